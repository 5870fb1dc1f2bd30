//! Aliases: names that stand for one or more indices, as Elasticsearch has them. A search
//! through an alias reads all its indices, each through the alias's `filter` for it when
//! it has one (a filtered alias: one index seen as several, by tenant or by date); a write
//! goes to its write index (the one marked `is_write_index`, or its only index); a document
//! read needs an alias of one index. Each alias is one core record (`07 alias`: JSON
//! `{"index": {"is_write_index": b, "filter": query}}`, both optional; records written
//! before filters hold `{"index": b | null}`), changed in the transaction of the request
//! that changes it, and held in memory.

use crate::error::{SearchError, SearchResult};
use crate::keys;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use strata_core::{Keyspace, Txn};

/// Most aliases.
pub const MAX_ALIASES: usize = 10_000;

/// Alias name → its indices.
#[derive(Clone, Default)]
pub struct Aliases {
    map: BTreeMap<String, BTreeMap<String, Member>>,
}

/// One index of an alias.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// `None`: not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_write_index: Option<bool>,
    /// A query (DSL) that searches through the alias on this index are filtered by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
}

/// A member as stored: an object, or the bare flag of records written before filters.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredMember {
    Flag(Option<bool>),
    Member(Member),
}

impl From<StoredMember> for Member {
    fn from(stored: StoredMember) -> Member {
        match stored {
            StoredMember::Flag(is_write_index) => Member { is_write_index, filter: None },
            StoredMember::Member(member) => member,
        }
    }
}

/// One step of `POST /_aliases`.
#[derive(Debug, PartialEq)]
pub enum Action {
    Add { index: String, alias: String, member: Member },
    Remove { index: String, alias: String },
}

impl Aliases {
    pub fn load(txn: &Txn, ks: &Keyspace) -> SearchResult<Aliases> {
        let mut map = BTreeMap::new();
        for pair in txn.scan_prefix(ks, &keys::alias_prefix()) {
            let (key, value) = pair?;
            let name = keys::alias_name(&key)?;
            let indices: BTreeMap<String, StoredMember> = serde_json::from_slice(&value)
                .map_err(|e| SearchError::internal(format!("corrupt alias record {name}: {e}")))?;
            map.insert(name, indices.into_iter().map(|(index, m)| (index, m.into())).collect());
        }
        Ok(Aliases { map })
    }

    pub fn contains(&self, alias: &str) -> bool {
        self.map.contains_key(alias)
    }

    /// The indices of `alias` with their filters, when it is one.
    pub fn members(&self, alias: &str) -> Option<impl Iterator<Item = (&String, Option<&Value>)>> {
        self.map.get(alias).map(|m| m.iter().map(|(index, member)| (index, member.filter.as_ref())))
    }

    /// Aliases whose names match `glob`.
    pub fn matching<'a>(&'a self, glob: &'a str) -> impl Iterator<Item = &'a String> {
        self.map.keys().filter(move |a| crate::source::glob_match(glob, a))
    }

    /// Where a write to `alias` goes.
    pub fn write_index(&self, alias: &str) -> SearchResult<String> {
        let indices = self.map.get(alias).ok_or_else(|| SearchError::index_not_found(alias))?;
        let marked: Vec<&String> =
            indices.iter().filter(|(_, m)| m.is_write_index == Some(true)).map(|(i, _)| i).collect();
        match (marked.as_slice(), indices.len()) {
            ([one], _) => Ok((*one).clone()),
            ([], 1) if indices.values().next().is_some_and(|m| m.is_write_index != Some(false)) => {
                Ok(indices.keys().next().expect("one").clone())
            }
            _ => Err(SearchError::illegal_argument(format!(
                "no write index is defined for alias [{alias}]. The write index may be explicitly disabled using is_write_index=false or the alias points to multiple indices without one being designated as a write index"
            ))),
        }
    }

    /// The one index a document read through `alias` reads.
    pub fn single_index(&self, alias: &str) -> SearchResult<String> {
        let indices = self.map.get(alias).ok_or_else(|| SearchError::index_not_found(alias))?;
        if indices.len() == 1 {
            return Ok(indices.keys().next().expect("one").clone());
        }
        Err(SearchError::illegal_argument(format!(
            "alias [{alias}] has more than one index associated with it [{}], can't execute a single index op",
            indices.keys().cloned().collect::<Vec<_>>().join(", ")
        )))
    }

    /// `{"alias": {} | {"is_write_index": b, "filter": query}}` for the aliases of `index`.
    pub fn of_index(&self, index: &str, names: Option<&str>) -> Map<String, Value> {
        let mut out = Map::new();
        for (alias, indices) in &self.map {
            if names.is_some_and(|n| !n.split(',').any(|g| crate::source::glob_match(g, alias))) {
                continue;
            }
            if let Some(member) = indices.get(index) {
                out.insert(alias.clone(), serde_json::to_value(member).expect("a member serializes"));
            }
        }
        out
    }

    /// These aliases with `actions` applied in order (all or none), the changed records
    /// written into `txn`; they hold once it commits. `is_index` says whether a name is an
    /// existing index; `check_filter` refuses a filter that is not a valid query on one.
    pub fn applied(
        &self,
        actions: &[Action],
        is_index: &dyn Fn(&str) -> bool,
        check_filter: &dyn Fn(&str, &Value) -> SearchResult<()>,
        txn: &mut Txn,
        ks: &Keyspace,
    ) -> SearchResult<Aliases> {
        let mut next = self.map.clone();
        for action in actions {
            match action {
                Action::Add { index, alias, member } => {
                    if !is_index(index) {
                        return Err(SearchError::index_not_found(index));
                    }
                    if let Some(filter) = &member.filter {
                        check_filter(index, filter)?;
                    }
                    if is_index(alias) {
                        return Err(SearchError::new(
                            400,
                            "invalid_alias_name_exception",
                            format!(
                                "Invalid alias name [{alias}]: an index or data stream exists with the same name as the alias"
                            ),
                        ));
                    }
                    crate::check_index_name(alias).map_err(|_| {
                        SearchError::new(
                            400,
                            "invalid_alias_name_exception",
                            format!("Invalid alias name [{alias}]"),
                        )
                    })?;
                    let entry = next.entry(alias.clone()).or_default();
                    if member.is_write_index == Some(true) {
                        for other in entry.values_mut() {
                            if other.is_write_index == Some(true) {
                                other.is_write_index = Some(false);
                            }
                        }
                    }
                    entry.insert(index.clone(), member.clone());
                }
                Action::Remove { index, alias } => {
                    let gone = next.get_mut(alias).is_some_and(|m| m.remove(index).is_some());
                    if !gone {
                        return Err(SearchError::new(
                            404,
                            "aliases_not_found_exception",
                            format!("aliases [{alias}] missing"),
                        ));
                    }
                    if next[alias].is_empty() {
                        next.remove(alias);
                    }
                }
            }
        }
        if next.len() > MAX_ALIASES {
            return Err(SearchError::illegal_argument(format!("more than {MAX_ALIASES} aliases")));
        }
        self.write_changes(&next, txn, ks)?;
        Ok(Aliases { map: next })
    }

    /// These aliases without `index` (it is being deleted), the changes written into `txn`.
    pub fn without_index(&self, index: &str, txn: &mut Txn, ks: &Keyspace) -> SearchResult<Aliases> {
        let mut next = self.map.clone();
        for indices in next.values_mut() {
            indices.remove(index);
        }
        next.retain(|_, m| !m.is_empty());
        self.write_changes(&next, txn, ks)?;
        Ok(Aliases { map: next })
    }

    fn write_changes(
        &self,
        next: &BTreeMap<String, BTreeMap<String, Member>>,
        txn: &mut Txn,
        ks: &Keyspace,
    ) -> SearchResult<()> {
        for (alias, indices) in next {
            if self.map.get(alias) != Some(indices) {
                txn.set(ks, keys::alias(alias), serde_json::to_vec(indices).expect("alias serializes"))?;
            }
        }
        for alias in self.map.keys().filter(|a| !next.contains_key(*a)) {
            txn.delete(ks, keys::alias(alias))?;
        }
        Ok(())
    }
}

/// The actions of a `POST /_aliases` body: `add` and `remove`, each with `index`/`indices`
/// and `alias`/`aliases` (and `is_write_index` and `filter` for `add`).
pub fn parse_actions(body: &Value) -> SearchResult<Vec<Action>> {
    let list = body.get("actions").and_then(Value::as_array).ok_or_else(|| {
        SearchError::new(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no actions specified;",
        )
    })?;
    let names = |o: &Value, one: &str, many: &str| -> SearchResult<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        if let Some(v) = o.get(one) {
            out.push(
                v.as_str().ok_or_else(|| SearchError::parsing(format!("[{one}] must be a string")))?.into(),
            );
        }
        if let Some(v) = o.get(many) {
            let items =
                v.as_array().ok_or_else(|| SearchError::parsing(format!("[{many}] must be an array")))?;
            for item in items {
                out.push(
                    item.as_str()
                        .ok_or_else(|| SearchError::parsing(format!("[{many}] holds strings")))?
                        .into(),
                );
            }
        }
        if out.is_empty() {
            return Err(SearchError::new(
                400,
                "action_request_validation_exception",
                format!("Validation Failed: 1: [{one}] or [{many}] is required;"),
            ));
        }
        Ok(out)
    };
    let mut actions = Vec::new();
    for item in list {
        let (kind, o) = item
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
            .ok_or_else(|| SearchError::parsing("each alias action is an object with one key"))?;
        for key in o.as_object().into_iter().flat_map(|m| m.keys()) {
            if !matches!(
                key.as_str(),
                "index" | "indices" | "alias" | "aliases" | "is_write_index" | "filter"
            ) {
                return Err(SearchError::illegal_argument(format!(
                    "[{key}] is not supported on aliases here"
                )));
            }
        }
        let (indices, aliases) = (names(o, "index", "indices")?, names(o, "alias", "aliases")?);
        for index in &indices {
            for alias in &aliases {
                actions.push(match kind.as_str() {
                    "add" => Action::Add { index: index.clone(), alias: alias.clone(), member: member(o)? },
                    "remove" => Action::Remove { index: index.clone(), alias: alias.clone() },
                    other => {
                        return Err(SearchError::parsing(format!("Unknown alias action [{other}]")));
                    }
                });
            }
        }
    }
    Ok(actions)
}

/// The member an `add` action or an index's `aliases` entry describes: `is_write_index` and
/// `filter` (a query object).
pub fn member(options: &Value) -> SearchResult<Member> {
    let filter = match options.get("filter") {
        None | Some(Value::Null) => None,
        Some(f @ Value::Object(_)) => Some(f.clone()),
        Some(_) => return Err(SearchError::parsing("[filter] must be a query object")),
    };
    Ok(Member { is_write_index: options.get("is_write_index").and_then(Value::as_bool), filter })
}
