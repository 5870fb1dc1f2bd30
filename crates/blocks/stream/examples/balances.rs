//! Event sourcing with the stream block: account transactions are appended to a topic, and
//! balances are rebuilt by replaying it — up to now, or as of an earlier time.
//!
//!   cargo run -p strata-stream --example balances

use std::collections::BTreeMap;
use std::sync::Arc;
use strata_core::{Options, Store, SystemClock};
use strata_stream::{NewRecord, StreamOptions, Streams, Until};

/// Folds the `transactions` topic into balances per account, up to `until`.
fn balances(streams: &Streams, until: Until) -> Result<BTreeMap<String, i64>, strata_stream::StreamError> {
    let mut balances = BTreeMap::new();
    streams.replay("transactions", 0, 0, until, |record| {
        let Some(tx) =
            record.value.as_deref().and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        else {
            return;
        };
        if let (Some(account), Some(amount)) = (tx["account"].as_str(), tx["amount"].as_i64()) {
            *balances.entry(account.to_string()).or_insert(0) += amount;
        }
    })?;
    Ok(balances)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path().join("core"), Options::default())?;
    let streams = Streams::open(store, Arc::new(SystemClock), StreamOptions::new(dir.path().join("stream")))?;
    streams.create_topic("transactions", Some(1), &[])?;
    let history = [
        (1_000, "alice", 100),
        (2_000, "bob", 50),
        (3_000, "alice", -30),
        (4_000, "bob", 25),
        (5_000, "alice", -20),
    ];
    for (at, account, amount) in history {
        let value = serde_json::json!({"account": account, "amount": amount}).to_string();
        let record = NewRecord {
            key: Some(account.into()),
            value: Some(value.into_bytes()),
            timestamp: Some(at),
            ..Default::default()
        };
        streams.append_records("transactions", 0, &[record]).await?;
    }
    println!("balances now:             {:?}", balances(&streams, Until::End)?);
    println!("balances as of t=3000 ms: {:?}", balances(&streams, Until::Time(3_000))?);
    println!("balances before offset 2: {:?}", balances(&streams, Until::Offset(2))?);
    Ok(())
}
