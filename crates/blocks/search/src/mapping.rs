//! Mappings: which fields an index has, of which type, analyzed how.
//!
//! A mapping is a tree of properties as Elasticsearch writes it (`{"properties": {"title":
//! {"type": "text", "fields": {"keyword": {"type": "keyword"}}}, "author": {"properties":
//! {...}}}}`). Objects are flattened by path: `author.name` is one field; arrays are several
//! values of one field. Unknown fields are mapped on first sight by the index's `dynamic`
//! setting (`true`: strings become `text` with a `keyword` sub-field, or `date` when they
//! look like one; integers `long`; fractions `float`; `false`: kept in `_source`, not
//! indexed; `strict`: the document is refused).

use crate::dates;
use crate::error::{SearchError, SearchResult};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Most fields an index may map (Elasticsearch's `index.mapping.total_fields.limit`).
pub const MAX_FIELDS: usize = 1000;
/// Deepest object nesting followed.
pub const MAX_DEPTH: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Keyword,
    Long,
    Integer,
    Short,
    Byte,
    Double,
    Float,
    Boolean,
    Date,
}

impl FieldType {
    fn parse(name: &str) -> Option<FieldType> {
        Some(match name {
            "text" | "match_only_text" | "search_as_you_type" => FieldType::Text,
            "keyword" | "constant_keyword" | "wildcard" => FieldType::Keyword,
            "long" | "unsigned_long" => FieldType::Long,
            "integer" => FieldType::Integer,
            "short" => FieldType::Short,
            "byte" => FieldType::Byte,
            "double" | "scaled_float" => FieldType::Double,
            "float" | "half_float" => FieldType::Float,
            "boolean" => FieldType::Boolean,
            "date" | "date_nanos" => FieldType::Date,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Keyword => "keyword",
            FieldType::Long => "long",
            FieldType::Integer => "integer",
            FieldType::Short => "short",
            FieldType::Byte => "byte",
            FieldType::Double => "double",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
        }
    }

    pub fn is_integer(self) -> bool {
        matches!(self, FieldType::Long | FieldType::Integer | FieldType::Short | FieldType::Byte)
    }

    pub fn is_float(self) -> bool {
        matches!(self, FieldType::Double | FieldType::Float)
    }
}

/// A mapped field: a leaf of the tree, with its multi-fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaf {
    pub ty: FieldType,
    /// Index-time analyzer (text fields).
    pub analyzer: Option<String>,
    pub search_analyzer: Option<String>,
    /// Keyword values longer than this are not indexed.
    pub ignore_above: Option<usize>,
    /// Whether the field is searchable (`index: false` keeps it only in `_source`).
    pub index: bool,
    pub boost: Option<f64>,
    pub fields: BTreeMap<String, Leaf>,
}

impl Leaf {
    fn new(ty: FieldType) -> Leaf {
        Leaf {
            ty,
            analyzer: None,
            search_analyzer: None,
            ignore_above: None,
            index: true,
            boost: None,
            fields: BTreeMap::new(),
        }
    }

    pub fn index_analyzer(&self) -> &str {
        self.analyzer.as_deref().unwrap_or("standard")
    }

    pub fn query_analyzer(&self) -> &str {
        self.search_analyzer.as_deref().or(self.analyzer.as_deref()).unwrap_or("standard")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dynamic {
    True,
    False,
    Strict,
}

impl Dynamic {
    fn parse(v: &Value) -> SearchResult<Dynamic> {
        match v {
            Value::Bool(true) => Ok(Dynamic::True),
            Value::Bool(false) => Ok(Dynamic::False),
            Value::String(s) if s == "true" || s == "runtime" => Ok(Dynamic::True),
            Value::String(s) if s == "false" => Ok(Dynamic::False),
            Value::String(s) if s == "strict" => Ok(Dynamic::Strict),
            other => {
                Err(SearchError::mapper_parsing(format!("Could not convert [dynamic] to boolean: {other}")))
            }
        }
    }

    fn to_json(self) -> Value {
        match self {
            Dynamic::True => json!(true),
            Dynamic::False => json!(false),
            Dynamic::Strict => json!("strict"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Property {
    Field(Leaf),
    Object { properties: BTreeMap<String, Property>, dynamic: Option<Dynamic> },
}

/// An index's mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    pub dynamic: Dynamic,
    pub date_detection: bool,
    pub properties: BTreeMap<String, Property>,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping { dynamic: Dynamic::True, date_detection: true, properties: BTreeMap::new() }
    }
}

fn parse_leaf(name: &str, def: &Map<String, Value>, depth: usize) -> SearchResult<Leaf> {
    let ty_name = def.get("type").and_then(Value::as_str).unwrap_or("object");
    let ty = FieldType::parse(ty_name).ok_or_else(|| {
        SearchError::mapper_parsing(format!("No handler for type [{ty_name}] declared on field [{name}]"))
    })?;
    let mut leaf = Leaf::new(ty);
    let string = |key: &str| def.get(key).and_then(Value::as_str).map(str::to_string);
    leaf.analyzer = string("analyzer");
    leaf.search_analyzer = string("search_analyzer");
    if let Some(normalizer) = string("normalizer") {
        // A keyword normalizer is an analyzer over the whole value.
        leaf.analyzer = Some(normalizer);
    }
    leaf.ignore_above = def.get("ignore_above").and_then(Value::as_u64).map(|n| n as usize);
    leaf.index = def.get("index").and_then(Value::as_bool).unwrap_or(true);
    leaf.boost = def.get("boost").and_then(Value::as_f64);
    if let Some(fields) = def.get("fields").and_then(Value::as_object) {
        if depth > 1 {
            return Err(SearchError::mapper_parsing(format!(
                "multi-field [{name}] cannot have multi-fields"
            )));
        }
        for (sub, sub_def) in fields {
            let sub_def = sub_def.as_object().ok_or_else(|| {
                SearchError::mapper_parsing(format!("Expected map for property [fields] on field [{name}]"))
            })?;
            leaf.fields.insert(sub.clone(), parse_leaf(&format!("{name}.{sub}"), sub_def, depth + 1)?);
        }
    }
    Ok(leaf)
}

fn parse_properties(props: &Value, prefix: &str, depth: usize) -> SearchResult<BTreeMap<String, Property>> {
    if depth > MAX_DEPTH {
        return Err(SearchError::illegal_argument(format!(
            "Limit of mapping depth [{MAX_DEPTH}] has been exceeded"
        )));
    }
    let props = props
        .as_object()
        .ok_or_else(|| SearchError::mapper_parsing("Expected map for property [properties]"))?;
    let mut out = BTreeMap::new();
    for (name, def) in props {
        if name.is_empty() || name.contains("..") || name.starts_with('.') || name.ends_with('.') {
            return Err(SearchError::mapper_parsing(format!("field name [{name}] is not valid")));
        }
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        let def = def
            .as_object()
            .ok_or_else(|| SearchError::mapper_parsing(format!("Expected map for property [{path}]")))?;
        let is_object = def.contains_key("properties")
            || matches!(
                def.get("type").and_then(Value::as_str),
                None | Some("object") | Some("nested") | Some("flattened")
            );
        let prop = if is_object
            && !def.contains_key("fields")
            && def.get("type").and_then(Value::as_str) != Some("flattened")
        {
            let properties = match def.get("properties") {
                Some(p) => parse_properties(p, &path, depth + 1)?,
                None => BTreeMap::new(),
            };
            let dynamic = def.get("dynamic").map(Dynamic::parse).transpose()?;
            Property::Object { properties, dynamic }
        } else if def.get("type").and_then(Value::as_str) == Some("flattened") {
            Property::Field(Leaf::new(FieldType::Keyword))
        } else {
            Property::Field(parse_leaf(&path, def, 1)?)
        };
        // `"a.b": {...}` in a mapping means the object `a` with the field `b`.
        insert_dotted(&mut out, name, prop);
    }
    Ok(out)
}

fn insert_dotted(map: &mut BTreeMap<String, Property>, name: &str, prop: Property) {
    match name.split_once('.') {
        None => {
            map.insert(name.to_string(), prop);
        }
        Some((head, tail)) => {
            let entry = map
                .entry(head.to_string())
                .or_insert_with(|| Property::Object { properties: BTreeMap::new(), dynamic: None });
            if let Property::Object { properties, .. } = entry {
                insert_dotted(properties, tail, prop);
            }
        }
    }
}

fn leaf_json(leaf: &Leaf) -> Value {
    let mut out = json!({ "type": leaf.ty.name() });
    if let Some(a) = &leaf.analyzer {
        out[if leaf.ty == FieldType::Keyword { "normalizer" } else { "analyzer" }] = json!(a);
    }
    if let Some(a) = &leaf.search_analyzer {
        out["search_analyzer"] = json!(a);
    }
    if let Some(n) = leaf.ignore_above {
        out["ignore_above"] = json!(n);
    }
    if !leaf.index {
        out["index"] = json!(false);
    }
    if let Some(b) = leaf.boost {
        out["boost"] = json!(b);
    }
    if !leaf.fields.is_empty() {
        out["fields"] =
            leaf.fields.iter().map(|(k, v)| (k.clone(), leaf_json(v))).collect::<Map<_, _>>().into();
    }
    out
}

fn properties_json(props: &BTreeMap<String, Property>) -> Value {
    props
        .iter()
        .map(|(name, prop)| {
            let v = match prop {
                Property::Field(leaf) => leaf_json(leaf),
                Property::Object { properties, dynamic } => {
                    let mut o = json!({ "properties": properties_json(properties) });
                    if let Some(d) = dynamic {
                        o["dynamic"] = d.to_json();
                    }
                    o
                }
            };
            (name.clone(), v)
        })
        .collect::<Map<_, _>>()
        .into()
}

fn merge_props(
    into: &mut BTreeMap<String, Property>,
    from: &BTreeMap<String, Property>,
    prefix: &str,
) -> SearchResult<()> {
    for (name, prop) in from {
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match (into.get_mut(name), prop) {
            (None, _) => {
                into.insert(name.clone(), prop.clone());
            }
            (
                Some(Property::Object { properties, dynamic }),
                Property::Object { properties: new, dynamic: new_dyn },
            ) => {
                merge_props(properties, new, &path)?;
                if new_dyn.is_some() {
                    *dynamic = *new_dyn;
                }
            }
            (Some(Property::Field(old)), Property::Field(new)) => {
                if old.ty != new.ty {
                    return Err(SearchError::illegal_argument(format!(
                        "mapper [{path}] cannot be changed from type [{}] to [{}]",
                        old.ty.name(),
                        new.ty.name()
                    )));
                }
                if old.analyzer != new.analyzer && new.analyzer.is_some() {
                    return Err(SearchError::illegal_argument(format!(
                        "Mapper for [{path}] conflicts with existing mapper: Cannot update parameter [analyzer]"
                    )));
                }
                for (sub, sub_leaf) in &new.fields {
                    old.fields.entry(sub.clone()).or_insert_with(|| sub_leaf.clone());
                }
                if new.search_analyzer.is_some() {
                    old.search_analyzer = new.search_analyzer.clone();
                }
            }
            (Some(_), _) => {
                return Err(SearchError::illegal_argument(format!(
                    "can't merge a non object mapping [{path}] with an object mapping"
                )));
            }
        }
    }
    Ok(())
}

impl Mapping {
    /// Reads `{"dynamic": ..., "properties": {...}}`.
    pub fn parse(v: &Value) -> SearchResult<Mapping> {
        let obj = v.as_object().ok_or_else(|| SearchError::mapper_parsing("mappings must be an object"))?;
        let mut mapping = Mapping::default();
        for (key, value) in obj {
            match key.as_str() {
                "dynamic" => mapping.dynamic = Dynamic::parse(value)?,
                "date_detection" => mapping.date_detection = value.as_bool().unwrap_or(true),
                "properties" => mapping.properties = parse_properties(value, "", 1)?,
                "_source" | "_meta" | "_routing" | "dynamic_templates" | "numeric_detection" => {}
                "_doc" if value.is_object() => return Mapping::parse(value),
                other => {
                    return Err(SearchError::mapper_parsing(format!(
                        "Root mapping definition has unsupported parameters:  [{other} : {value}]"
                    )));
                }
            }
        }
        mapping.check_size()?;
        Ok(mapping)
    }

    pub fn to_json(&self) -> Value {
        let mut out = json!({ "properties": properties_json(&self.properties) });
        if self.dynamic != Dynamic::True {
            out["dynamic"] = self.dynamic.to_json();
        }
        if !self.date_detection {
            out["date_detection"] = json!(false);
        }
        out
    }

    /// Adds another mapping's fields (put mapping). Changing a field's type is an error.
    pub fn merge(&mut self, other: &Mapping, dynamic_given: bool) -> SearchResult<()> {
        merge_props(&mut self.properties, &other.properties, "")?;
        if dynamic_given {
            self.dynamic = other.dynamic;
        }
        self.check_size()
    }

    fn check_size(&self) -> SearchResult<()> {
        let n = self.leaves().len();
        if n > MAX_FIELDS {
            return Err(SearchError::illegal_argument(format!(
                "Limit of total fields [{MAX_FIELDS}] has been exceeded"
            )));
        }
        Ok(())
    }

    /// Every searchable field as (path, path of its values in `_source`, leaf), multi-fields
    /// included (`title.keyword` takes its values from `title`).
    pub fn leaves(&self) -> Vec<(String, String, &Leaf)> {
        fn walk<'a>(
            props: &'a BTreeMap<String, Property>,
            prefix: &str,
            out: &mut Vec<(String, String, &'a Leaf)>,
        ) {
            for (name, prop) in props {
                let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                match prop {
                    Property::Field(leaf) => {
                        for (sub, sub_leaf) in &leaf.fields {
                            out.push((format!("{path}.{sub}"), path.clone(), sub_leaf));
                        }
                        out.push((path.clone(), path, leaf));
                    }
                    Property::Object { properties, .. } => walk(properties, &path, out),
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.properties, "", &mut out);
        out
    }

    /// Whether a document has a field this mapping does not know, or a value where an object
    /// is mapped: a walk without allocation, so that the common case (nothing new) skips
    /// [`Mapping::with_dynamic_fields`].
    pub fn has_unmapped(&self, doc: &Value) -> bool {
        fn walk(props: &BTreeMap<String, Property>, v: &Value) -> bool {
            match v {
                Value::Object(obj) => obj.iter().any(|(k, v)| match props.get(k) {
                    None => !v.is_null(),
                    Some(Property::Field(_)) => false,
                    Some(Property::Object { properties, .. }) => match v {
                        Value::Object(_) | Value::Array(_) => walk(properties, v),
                        Value::Null => false,
                        _ => true,
                    },
                }),
                Value::Array(items) => items.iter().any(|item| walk(props, item)),
                _ => false,
            }
        }
        walk(&self.properties, doc)
    }

    /// The fields a document would add under dynamic mapping, merged into a copy of this
    /// mapping; `None` when the document brings nothing new. A `strict` index refuses it.
    pub fn with_dynamic_fields(&self, doc: &Value) -> SearchResult<Option<Mapping>> {
        let mut next = self.clone();
        let changed = dynamic_walk(&mut next.properties, doc, "", self.dynamic, self.date_detection, 0)?;
        if changed {
            next.check_size()?;
            Ok(Some(next))
        } else {
            Ok(None)
        }
    }
}

fn infer(value: &Value, date_detection: bool) -> Option<Property> {
    match value {
        Value::Null => None,
        Value::Bool(_) => Some(Property::Field(Leaf::new(FieldType::Boolean))),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(Property::Field(Leaf::new(FieldType::Long))),
        Value::Number(_) => Some(Property::Field(Leaf::new(FieldType::Float))),
        Value::String(s) if date_detection && dates::looks_like_date(s) => {
            Some(Property::Field(Leaf::new(FieldType::Date)))
        }
        Value::String(_) => {
            let mut leaf = Leaf::new(FieldType::Text);
            let mut keyword = Leaf::new(FieldType::Keyword);
            keyword.ignore_above = Some(256);
            leaf.fields.insert("keyword".into(), keyword);
            Some(Property::Field(leaf))
        }
        Value::Array(items) => items.iter().find_map(|v| infer(v, date_detection)),
        Value::Object(_) => Some(Property::Object { properties: BTreeMap::new(), dynamic: None }),
    }
}

fn dynamic_walk(
    props: &mut BTreeMap<String, Property>,
    value: &Value,
    prefix: &str,
    dynamic: Dynamic,
    date_detection: bool,
    depth: usize,
) -> SearchResult<bool> {
    if depth > MAX_DEPTH {
        return Err(SearchError::mapper_parsing(format!(
            "the document nests deeper than {MAX_DEPTH} objects"
        )));
    }
    let Some(obj) = value.as_object() else { return Ok(false) };
    let mut changed = false;
    for (name, v) in obj {
        if name.is_empty() || name.starts_with('.') || name.ends_with('.') {
            return Err(SearchError::mapper_parsing(format!(
                "field name cannot be empty or start or end with a dot: [{name}]"
            )));
        }
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        // Dotted names in documents (`{"a.b": 1}`) are paths, as in mappings.
        if let Some((head, tail)) = name.split_once('.') {
            let nested = json!({ tail: v });
            let wrapper = json!({ head: nested });
            changed |= dynamic_walk(props, &wrapper, prefix, dynamic, date_detection, depth)?;
            continue;
        }
        match props.get_mut(name) {
            Some(Property::Object { properties, dynamic: own }) => {
                let items: Vec<&Value> = match v {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for item in items {
                    if !item.is_object() && !item.is_null() {
                        return Err(SearchError::mapper_parsing(format!(
                            "object mapping for [{path}] tried to parse field [{path}] as object, but found a concrete value"
                        )));
                    }
                    changed |= dynamic_walk(
                        properties,
                        item,
                        &path,
                        own.unwrap_or(dynamic),
                        date_detection,
                        depth + 1,
                    )?;
                }
            }
            Some(Property::Field(_)) => {}
            None => {
                let Some(prop) = infer(v, date_detection) else { continue };
                match dynamic {
                    Dynamic::Strict => {
                        return Err(SearchError::new(
                            400,
                            "strict_dynamic_mapping_exception",
                            format!(
                                "mapping set to strict, dynamic introduction of [{name}] within [{}] is not allowed",
                                if prefix.is_empty() { "_doc" } else { prefix }
                            ),
                        ));
                    }
                    Dynamic::False => continue,
                    Dynamic::True => {}
                }
                props.insert(name.clone(), prop);
                changed = true;
                if let Some(Property::Object { properties, .. }) = props.get_mut(name) {
                    let items: Vec<&Value> = match v {
                        Value::Array(items) => items.iter().collect(),
                        other => vec![other],
                    };
                    for item in items {
                        dynamic_walk(properties, item, &path, dynamic, date_detection, depth + 1)?;
                    }
                }
            }
        }
    }
    Ok(changed)
}

/// Every value of a document at a path, arrays flattened (`tags` → each tag; `authors.name`
/// → each author's name), dotted keys honoured.
pub fn values_at<'a>(doc: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    match doc {
        Value::Array(items) => items.iter().for_each(|item| values_at(item, path, out)),
        Value::Object(obj) => {
            if let Some(v) = obj.get(path) {
                match v {
                    Value::Array(items) => out.extend(items.iter().flat_map(flatten)),
                    Value::Null => {}
                    other => out.push(other),
                }
            }
            let mut rest = path;
            while let Some(i) = rest.find('.') {
                let (head, tail) = (&path[..path.len() - rest.len() + i], &rest[i + 1..]);
                if let Some(v) = obj.get(head) {
                    values_at(v, tail, out);
                }
                rest = tail;
            }
        }
        _ => {}
    }
}

fn flatten(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().flat_map(flatten).collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_mapping_maps_new_fields_once() {
        let mapping = Mapping::default();
        let doc = json!({"title": "Hello", "views": 3, "score": 1.5, "published": "2024-05-01", "author": {"name": "Ann"}, "tags": ["a", "b"]});
        let next = mapping.with_dynamic_fields(&doc).unwrap().unwrap();
        let leaves: BTreeMap<String, FieldType> =
            next.leaves().into_iter().map(|(p, _, l)| (p, l.ty)).collect();
        assert_eq!(leaves["title"], FieldType::Text);
        assert_eq!(leaves["title.keyword"], FieldType::Keyword);
        assert_eq!(leaves["views"], FieldType::Long);
        assert_eq!(leaves["score"], FieldType::Float);
        assert_eq!(leaves["published"], FieldType::Date);
        assert_eq!(leaves["author.name"], FieldType::Text);
        assert!(next.with_dynamic_fields(&doc).unwrap().is_none());
        assert!(mapping.has_unmapped(&doc) && !next.has_unmapped(&doc));
        assert!(next.has_unmapped(&json!({"author": "not an object"})));
        let strict =
            Mapping::parse(&json!({"dynamic": "strict", "properties": {"a": {"type": "keyword"}}})).unwrap();
        assert_eq!(
            strict.with_dynamic_fields(&json!({"b": 1})).unwrap_err().kind,
            "strict_dynamic_mapping_exception"
        );
    }

    #[test]
    fn mappings_round_trip_and_refuse_type_changes() {
        let m = Mapping::parse(&json!({"properties": {"a.b": {"type": "integer"}, "t": {"type": "text", "analyzer": "english"}}})).unwrap();
        assert_eq!(m.to_json()["properties"]["a"]["properties"]["b"]["type"], "integer");
        let mut m2 = m.clone();
        let change = Mapping::parse(&json!({"properties": {"t": {"type": "keyword"}}})).unwrap();
        assert!(m2.merge(&change, false).is_err());
        assert!(Mapping::parse(&json!({"properties": {"x": {"type": "nope"}}})).is_err());
    }

    #[test]
    fn values_follow_paths_through_arrays() {
        let doc = json!({"authors": [{"name": "a"}, {"name": ["b", "c"]}], "x.y": 1});
        let mut out = Vec::new();
        values_at(&doc, "authors.name", &mut out);
        assert_eq!(out, [&json!("a"), &json!("b"), &json!("c")]);
        out.clear();
        values_at(&doc, "x.y", &mut out);
        assert_eq!(out, [&json!(1)]);
    }
}
