//! The proxy's runtime route changes (the admin API, `/v1/edge/routes`) kept in core, so a
//! restart starts from them: the edge block's [`RouteJournal`] seam over the `edge` keyspace.
//!
//! | key | value |
//! | --- | --- |
//! | `01 name` | JSON `{"order": n, "spec": <route document> \| null}` (null: deleted) |
//!
//! `order` (nanoseconds since the epoch at the change) replays changes in the order they
//! were made, which keeps the declaration order that breaks ties between routes.

use serde_json::{Value, json};
use strata_core::keycode::{Decoder, KeyBuf};
use strata_core::{Keyspace, Store};
use strata_edge::{EdgeError, RouteJournal, RouteSpec};

const TAG_ROUTE: u8 = 1;

pub struct CoreJournal {
    store: Store,
    ks: Keyspace,
}

impl CoreJournal {
    pub fn open(store: Store) -> strata_core::Result<CoreJournal> {
        let ks = store.keyspace("edge")?;
        Ok(CoreJournal { store, ks })
    }

    fn record(&self, name: &str, spec: Option<&RouteSpec>) -> Result<(), EdgeError> {
        let order = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let value = json!({"order": order, "spec": spec});
        let key = KeyBuf::new().tag(TAG_ROUTE).str(name).finish();
        let storage = |e: strata_core::Error| EdgeError::Storage(format!("recording route {name}: {e}"));
        let mut txn = self.store.begin();
        txn.set(&self.ks, key, value.to_string().into_bytes()).map_err(storage)?;
        txn.commit().map_err(storage)?;
        Ok(())
    }
}

impl RouteJournal for CoreJournal {
    fn put(&self, spec: &RouteSpec) -> Result<(), EdgeError> {
        self.record(&spec.name, Some(spec))
    }

    fn delete(&self, name: &str) -> Result<(), EdgeError> {
        self.record(name, None)
    }

    fn load(&self) -> Result<Vec<(String, Option<RouteSpec>)>, EdgeError> {
        let corrupt = |e: String| EdgeError::Storage(format!("reading recorded routes: {e}"));
        let txn = self.store.begin_read_only();
        let mut changes = Vec::new();
        for pair in txn.scan_prefix(&self.ks, &[TAG_ROUTE]) {
            let (key, value) = pair.map_err(|e| corrupt(e.to_string()))?;
            let mut decoder = Decoder::new(&key);
            decoder.tag().map_err(|e| corrupt(e.to_string()))?;
            let name = decoder.string().map_err(|e| corrupt(e.to_string()))?;
            let record: Value = serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?;
            let order = record["order"].as_u64().unwrap_or(0);
            let spec = match &record["spec"] {
                Value::Null => None,
                spec => {
                    Some(serde_json::from_value(spec.clone()).map_err(|e| corrupt(format!("{name}: {e}")))?)
                }
            };
            changes.push((order, name, spec));
        }
        changes.sort_by_key(|(order, _, _)| *order);
        Ok(changes.into_iter().map(|(_, name, spec)| (name, spec)).collect())
    }
}
