//! SQS's older query protocol (form-encoded `Action=...`, XML answers), which clients from
//! before the JSON protocol speak (aws-cli 2.9 in Debian, older SDKs). Requests are turned
//! into the JSON protocol's input and answers from its output, so both protocols share
//! `actions.rs`:
//!
//! ```text
//!   Action=SendMessage&MessageAttribute.1.Name=k&MessageAttribute.1.Value.StringValue=v
//!     -> {"MessageAttributes": {"k": {"StringValue": "v"}}}
//!   {"Messages": [{...}]}  ->  <ReceiveMessageResult><Message>...</Message></ReceiveMessageResult>
//! ```

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The action and JSON input of a form-encoded request.
pub(crate) fn parse(form: &[u8]) -> (String, Value) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(form).into_owned().collect();
    let action = pairs.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone()).unwrap_or_default();
    let entry_prefix = format!("{action}RequestEntry.");
    let mut input = Map::new();
    let mut entries: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
    let mut rest = Vec::new();
    for (k, v) in pairs {
        if let Some(tail) = k.strip_prefix(&entry_prefix)
            && let Some((n, field)) = tail.split_once('.')
            && let Ok(n) = n.parse::<u32>()
        {
            entries.entry(n).or_default().push((field.to_owned(), v));
        } else if k != "Action" && k != "Version" {
            rest.push((k, v));
        }
    }
    fold(&mut input, rest, &action);
    if !entries.is_empty() {
        let list: Vec<Value> = entries
            .into_values()
            .map(|fields| {
                let mut entry = Map::new();
                fold(&mut entry, fields, "");
                Value::Object(entry)
            })
            .collect();
        input.insert("Entries".into(), Value::Array(list));
    }
    (action, Value::Object(input))
}

/// Folds flattened query parameters into JSON fields.
fn fold(into: &mut Map<String, Value>, pairs: Vec<(String, String)>, action: &str) {
    let mut indexed: BTreeMap<(String, u32), BTreeMap<String, String>> = BTreeMap::new();
    for (k, v) in pairs {
        let mut parts = k.splitn(3, '.');
        let (name, n, field) = (parts.next().unwrap_or(""), parts.next(), parts.next());
        match n.and_then(|n| n.parse::<u32>().ok()) {
            Some(n) => {
                indexed.entry((name.to_owned(), n)).or_default().insert(field.unwrap_or("").to_owned(), v);
            }
            None => {
                into.insert(k, Value::String(v));
            }
        }
    }
    for ((name, _), fields) in indexed {
        let value = |f: &str| fields.get(f).cloned().unwrap_or_default();
        match name.as_str() {
            "Attribute" => map_entry(into, "Attributes", value("Name"), Value::String(value("Value"))),
            "Tag" => {
                let key = if action == "CreateQueue" { "tags" } else { "Tags" };
                map_entry(into, key, value("Key"), Value::String(value("Value")));
            }
            "MessageAttribute" => {
                let mut attr = Map::new();
                for (f, v) in &fields {
                    if let Some(field) = f.strip_prefix("Value.") {
                        attr.insert(field.to_owned(), Value::String(v.clone()));
                    }
                }
                map_entry(into, "MessageAttributes", value("Name"), Value::Object(attr));
            }
            list @ ("AttributeName" | "MessageAttributeName" | "MessageSystemAttributeName" | "TagKey") => {
                let key = format!("{}s", list);
                let entry = into.entry(key).or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = entry {
                    items.push(Value::String(value("")));
                }
            }
            _ => {}
        }
    }
}

fn map_entry(into: &mut Map<String, Value>, key: &str, name: String, value: Value) {
    if let Value::Object(map) = into.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new())) {
        map.insert(name, value);
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The element name of each item of a JSON list in the XML answer.
fn item_name(action: &str, list: &str) -> String {
    match list {
        "Messages" => "Message".into(),
        "QueueUrls" | "queueUrls" => "QueueUrl".into(),
        "Successful" => format!("{}ResultEntry", action),
        "Failed" => "BatchResultErrorEntry".into(),
        other => other.trim_end_matches('s').into(),
    }
}

fn write(out: &mut String, action: &str, name: &str, value: &Value) {
    match (name, value) {
        (_, Value::Array(items)) => {
            let item = item_name(action, name);
            for v in items {
                write(out, action, &item, v);
            }
        }
        ("Attributes" | "Tags", Value::Object(map)) => {
            let (element, key) = if name == "Tags" { ("Tag", "Key") } else { ("Attribute", "Name") };
            for (k, v) in map {
                let text = v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
                out.push_str(&format!(
                    "<{element}><{key}>{}</{key}><Value>{}</Value></{element}>",
                    escape(k),
                    escape(&text)
                ));
            }
        }
        ("MessageAttributes", Value::Object(map)) => {
            for (k, v) in map {
                out.push_str(&format!("<MessageAttribute><Name>{}</Name><Value>", escape(k)));
                if let Value::Object(fields) = v {
                    for (f, fv) in fields {
                        out.push_str(&format!("<{f}>{}</{f}>", escape(fv.as_str().unwrap_or_default())));
                    }
                }
                out.push_str("</Value></MessageAttribute>");
            }
        }
        (_, Value::Object(map)) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in map {
                write(out, action, k, v);
            }
            out.push_str(&format!("</{name}>"));
        }
        (_, Value::Null) => {}
        (_, Value::String(s)) => out.push_str(&format!("<{name}>{}</{name}>", escape(s))),
        (_, other) => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// The XML answer of `action` for the JSON protocol's `output`.
pub(crate) fn answer(action: &str, output: &Value, request_id: &str) -> String {
    let mut result = String::new();
    if let Value::Object(map) = output {
        for (k, v) in map {
            write(&mut result, action, k, v);
        }
    }
    format!(
        "<?xml version=\"1.0\"?><{action}Response xmlns=\"{XMLNS}\"><{action}Result>{result}</{action}Result>\
         <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    )
}

/// The XML error of the query protocol.
pub(crate) fn error(code: &str, message: &str, sender_fault: bool, request_id: &str) -> String {
    let fault = if sender_fault { "Sender" } else { "Receiver" };
    format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{fault}</Type><Code>{}</Code>\
         <Message>{}</Message><Detail/></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
        escape(code),
        escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms_become_json_inputs() {
        let form = b"Action=SendMessageBatch&QueueUrl=http%3A%2F%2Fh%2F0%2Fq&SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=one&SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=k&SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String&SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=v&SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=two";
        let (action, input) = parse(form);
        assert_eq!(action, "SendMessageBatch");
        assert_eq!(input["QueueUrl"], "http://h/0/q");
        assert_eq!(
            input["Entries"][0]["MessageAttributes"]["k"],
            json!({"DataType": "String", "StringValue": "v"})
        );
        assert_eq!(input["Entries"][1]["MessageBody"], "two");
        let (_, input) = parse(b"Action=CreateQueue&QueueName=q&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=60&Tag.1.Key=team&Tag.1.Value=web");
        assert_eq!(input["Attributes"], json!({"VisibilityTimeout": "60"}));
        assert_eq!(input["tags"], json!({"team": "web"}));
        let (_, input) = parse(b"Action=ReceiveMessage&AttributeName.1=All&MessageAttributeName.1=All");
        assert_eq!(input["AttributeNames"], json!(["All"]));
    }

    #[test]
    fn outputs_become_xml() {
        let out = json!({"Messages": [{"Body": "a<b", "Attributes": {"SentTimestamp": "1"}}]});
        let xml = answer("ReceiveMessage", &out, "r1");
        assert!(xml.contains("<ReceiveMessageResult><Message><Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute><Body>a&lt;b</Body></Message></ReceiveMessageResult>"), "{xml}");
        let xml = answer("ListQueues", &json!({"QueueUrls": ["u1", "u2"]}), "r");
        assert!(xml.contains("<QueueUrl>u1</QueueUrl><QueueUrl>u2</QueueUrl>"));
        assert!(
            error("AWS.SimpleQueueService.NonExistentQueue", "no", true, "r").contains("<Type>Sender</Type>")
        );
    }
}
