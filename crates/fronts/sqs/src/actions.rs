//! The SQS actions: each reads its JSON input, calls the queue block (on a blocking thread,
//! or for the hot actions on this one, see [`inline`]), and builds the JSON output SQS
//! documents.

use crate::{SqsConfig, SqsError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_queue::{Attributes, MessageAttribute, Queues, Redrive};

pub(crate) struct Context {
    pub(crate) queues: Queues,
    pub(crate) moves: crate::move_tasks::MoveTasks,
    pub(crate) config: Arc<SqsConfig>,
    /// The Host the client used, for queue URLs.
    pub(crate) host: String,
}

impl Context {
    fn url(&self, queue: &str) -> String {
        format!("http://{}/{}/{queue}", self.host, self.config.account_id)
    }

    fn arn(&self, queue: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{queue}", self.config.region, self.config.account_id)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, strata_queue::QueueError> + Send + 'static,
) -> Result<T, SqsError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(SqsError::from),
        Err(err) => {
            Err(SqsError::from(strata_queue::QueueError::Core(strata_core::Error::Storage(err.to_string()))))
        }
    }
}

/// Runs a hot action's queue work (send, receive, delete, visibility change) on this thread
/// rather than a blocking one, then awaits the fsync its commits need (`Queues::deferring`).
/// Such work is a few short reads and one commit; handing it to a blocking thread and back
/// cost two thread wake-ups per request, more than the work itself.
async fn inline<T>(
    queues: &Queues,
    f: impl FnOnce(&Queues) -> Result<T, strata_queue::QueueError>,
) -> Result<T, SqsError> {
    let deferring = queues.deferring();
    let value = f(&deferring)?;
    deferring.durable().await?;
    Ok(value)
}

fn str_field<'a>(input: &'a Value, name: &str) -> Result<&'a str, SqsError> {
    input.get(name).and_then(Value::as_str).ok_or_else(|| SqsError::missing(name))
}

fn int_field(input: &Value, name: &str) -> Result<Option<u64>, SqsError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or_else(|| SqsError::invalid(format!("{name} must be a non-negative integer"))),
    }
}

/// The queue named by a `QueueUrl` (its last path segment).
fn queue_of(input: &Value) -> Result<String, SqsError> {
    let url = str_field(input, "QueueUrl")?;
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| SqsError::invalid("QueueUrl names no queue"))
}

fn queue_of_arn(arn: &str) -> Result<String, SqsError> {
    arn.rsplit(':')
        .next()
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| SqsError::invalid(format!("{arn} is not a queue ARN")))
}

/// Applies SQS attribute strings to `attrs`.
fn apply_attributes(attrs: &mut Attributes, given: &Map<String, Value>) -> Result<(), SqsError> {
    for (name, value) in given {
        let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
        let number =
            || text.parse::<u64>().map_err(|_| SqsError::invalid(format!("{name} must be a number")));
        let flag = || match text.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(SqsError::invalid(format!("{name} must be true or false"))),
        };
        match name.as_str() {
            "VisibilityTimeout" => attrs.visibility_timeout_secs = number()?,
            "MessageRetentionPeriod" => attrs.retention_secs = number()?,
            "DelaySeconds" => attrs.delay_secs = number()?,
            "MaximumMessageSize" => attrs.max_message_bytes = number()? as usize,
            "ReceiveMessageWaitTimeSeconds" => attrs.receive_wait_secs = number()?,
            "FifoQueue" => attrs.fifo = flag()?,
            "ContentBasedDeduplication" => attrs.content_based_dedup = flag()?,
            "RedriveAllowPolicy" => attrs.redrive_allow = (!text.is_empty()).then_some(text),
            "MaximumDepth" if text.is_empty() => attrs.max_depth = None,
            "MaximumDepth" => attrs.max_depth = Some(number()?),
            "RedrivePolicy" if text.is_empty() => attrs.redrive = None,
            "RedrivePolicy" => {
                let policy: Value = serde_json::from_str(&text)
                    .map_err(|_| SqsError::invalid("RedrivePolicy must be JSON"))?;
                let target = policy
                    .get("deadLetterTargetArn")
                    .and_then(Value::as_str)
                    .ok_or_else(|| SqsError::invalid("RedrivePolicy needs deadLetterTargetArn"))?;
                let count = int_field(&policy, "maxReceiveCount")?
                    .ok_or_else(|| SqsError::invalid("RedrivePolicy needs maxReceiveCount"))?;
                attrs.redrive = Some(Redrive {
                    dead_letter_queue: queue_of_arn(target)?,
                    max_receive_count: count as u32,
                });
            }
            "KmsMasterKeyId"
            | "KmsDataKeyReusePeriodSeconds"
            | "SqsManagedSseEnabled"
            | "Policy"
            | "DeduplicationScope"
            | "FifoThroughputLimit" => {}
            other => {
                return Err(SqsError::new(
                    "InvalidAttributeName",
                    "InvalidAttributeName",
                    format!("unknown attribute {other}"),
                ));
            }
        }
    }
    Ok(())
}

fn message_attributes(input: &Value) -> Result<BTreeMap<String, MessageAttribute>, SqsError> {
    let mut out = BTreeMap::new();
    let Some(map) = input.get("MessageAttributes").and_then(Value::as_object) else { return Ok(out) };
    for (name, attr) in map {
        let data_type = str_field(attr, "DataType")?.to_owned();
        let binary_value =
            match attr.get("BinaryValue").and_then(Value::as_str) {
                Some(b) => Some(BASE64.decode(b).map_err(|_| {
                    SqsError::invalid(format!("attribute {name}'s BinaryValue is not base64"))
                })?),
                None => None,
            };
        let string_value = attr.get("StringValue").and_then(Value::as_str).map(str::to_owned);
        if string_value.is_none() && binary_value.is_none() {
            return Err(SqsError::invalid(format!("attribute {name} has no value")));
        }
        out.insert(name.clone(), MessageAttribute { data_type, string_value, binary_value });
    }
    Ok(out)
}

fn send_of(input: &Value) -> Result<strata_queue::Send, SqsError> {
    Ok(strata_queue::Send {
        body: str_field(input, "MessageBody")?.to_owned(),
        attributes: message_attributes(input)?,
        delay_secs: int_field(input, "DelaySeconds")?,
        group: input.get("MessageGroupId").and_then(Value::as_str).map(str::to_owned),
        dedup_id: input.get("MessageDeduplicationId").and_then(Value::as_str).map(str::to_owned),
        sender: String::new(),
    })
}

fn sent_json(sent: &strata_queue::Sent, fifo: bool) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("MessageId".into(), json!(sent.id));
    out.insert("MD5OfMessageBody".into(), json!(sent.md5_of_body));
    if let Some(md5) = &sent.md5_of_attributes {
        out.insert("MD5OfMessageAttributes".into(), json!(md5));
    }
    if fifo {
        out.insert("SequenceNumber".into(), json!(format!("{:020}", sent.seq)));
    }
    out
}

fn entries(input: &Value) -> Result<&Vec<Value>, SqsError> {
    let entries =
        input.get("Entries").and_then(Value::as_array).ok_or_else(|| SqsError::missing("Entries"))?;
    if entries.is_empty() {
        return Err(SqsError::new(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            "the batch has no entries",
        ));
    }
    if entries.len() > 10 {
        return Err(SqsError::new(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            "at most 10 entries per batch",
        ));
    }
    Ok(entries)
}

fn failed(id: &str, err: &SqsError) -> Value {
    json!({"Id": id, "SenderFault": err.sender_fault(), "Code": err.code(), "Message": err.message()})
}

pub(crate) async fn run(cx: Context, action: &str, input: Value) -> Result<Value, SqsError> {
    let q = cx.queues.clone();
    match action {
        "CreateQueue" => {
            let name = str_field(&input, "QueueName")?.to_owned();
            let mut attrs = Attributes { fifo: name.ends_with(".fifo"), ..Attributes::default() };
            if let Some(given) = input.get("Attributes").and_then(Value::as_object) {
                apply_attributes(&mut attrs, given)?;
            }
            let tags: BTreeMap<String, String> = input
                .get("tags")
                .and_then(Value::as_object)
                .map(|t| {
                    t.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()
                })
                .unwrap_or_default();
            let n = name.clone();
            blocking(move || q.create_queue(&n, attrs, tags)).await?;
            Ok(json!({"QueueUrl": cx.url(&name)}))
        }
        "GetQueueUrl" => {
            let name = str_field(&input, "QueueName")?.to_owned();
            let n = name.clone();
            blocking(move || q.queue(&n)).await?;
            Ok(json!({"QueueUrl": cx.url(&name)}))
        }
        "ListQueues" => {
            let prefix = input.get("QueueNamePrefix").and_then(Value::as_str).unwrap_or("").to_owned();
            let max = int_field(&input, "MaxResults")?.unwrap_or(1000).clamp(1, 1000) as usize;
            let after = input.get("NextToken").and_then(Value::as_str).map(str::to_owned);
            let names = blocking(move || q.list_queues(&prefix)).await?;
            let rest: Vec<&String> = names.iter().filter(|n| after.as_ref().is_none_or(|a| *n > a)).collect();
            let page: Vec<&String> = rest.iter().take(max).copied().collect();
            let mut out = json!({"QueueUrls": page.iter().map(|n| cx.url(n)).collect::<Vec<_>>()});
            if rest.len() > max
                && let Some(last) = page.last()
            {
                out["NextToken"] = json!(last);
            }
            Ok(out)
        }
        "DeleteQueue" => {
            let name = queue_of(&input)?;
            blocking(move || q.delete_queue(&name)).await?;
            Ok(json!({}))
        }
        "PurgeQueue" => {
            let name = queue_of(&input)?;
            blocking(move || q.purge(&name)).await?;
            Ok(json!({}))
        }
        "GetQueueAttributes" => {
            let name = queue_of(&input)?;
            let wanted: Vec<String> = input
                .get("AttributeNames")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let n = name.clone();
            let (meta, counts) = blocking(move || Ok((q.queue(&n)?, q.counts(&n)?))).await?;
            let a = &meta.attributes;
            let mut all: Vec<(&str, String)> = vec![
                ("QueueArn", cx.arn(&name)),
                ("ApproximateNumberOfMessages", counts.visible.to_string()),
                ("ApproximateNumberOfMessagesNotVisible", counts.not_visible.to_string()),
                ("ApproximateNumberOfMessagesDelayed", counts.delayed.to_string()),
                ("CreatedTimestamp", (meta.created_ms / 1000).to_string()),
                ("LastModifiedTimestamp", (meta.modified_ms / 1000).to_string()),
                ("VisibilityTimeout", a.visibility_timeout_secs.to_string()),
                ("MessageRetentionPeriod", a.retention_secs.to_string()),
                ("DelaySeconds", a.delay_secs.to_string()),
                ("MaximumMessageSize", a.max_message_bytes.to_string()),
                ("ReceiveMessageWaitTimeSeconds", a.receive_wait_secs.to_string()),
            ];
            if let Some(depth) = a.max_depth {
                all.push(("MaximumDepth", depth.to_string()));
            }
            if let Some(r) = &a.redrive {
                let policy = json!({"deadLetterTargetArn": cx.arn(&r.dead_letter_queue), "maxReceiveCount": r.max_receive_count});
                all.push(("RedrivePolicy", policy.to_string()));
            }
            if let Some(p) = &a.redrive_allow {
                all.push(("RedriveAllowPolicy", p.clone()));
            }
            if a.fifo {
                all.push(("FifoQueue", "true".into()));
                all.push(("ContentBasedDeduplication", a.content_based_dedup.to_string()));
            }
            let every = wanted.is_empty() || wanted.iter().any(|w| w == "All");
            let attributes: Map<String, Value> = all
                .into_iter()
                .filter(|(k, _)| every || wanted.iter().any(|w| w == k))
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            Ok(json!({"Attributes": attributes}))
        }
        "SetQueueAttributes" => {
            let name = queue_of(&input)?;
            let given = input
                .get("Attributes")
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| SqsError::missing("Attributes"))?;
            blocking(move || {
                q.update_queue(&name, |meta| {
                    apply_attributes(&mut meta.attributes, &given)
                        .map_err(|e| strata_queue::QueueError::InvalidParameter(e.message().to_owned()))
                })
            })
            .await?;
            Ok(json!({}))
        }
        "SendMessage" => {
            let name = queue_of(&input)?;
            let send = send_of(&input)?;
            let n = name.clone();
            let (sent, fifo) = inline(&q, |q| Ok((q.send(&n, send)?, q.queue(&n)?.attributes.fifo))).await?;
            Ok(Value::Object(sent_json(&sent, fifo)))
        }
        "SendMessageBatch" => {
            let name = queue_of(&input)?;
            let entries = entries(&input)?.clone();
            inline(&q, |q| {
                let fifo = q.queue(&name)?.attributes.fifo;
                let (mut ok, mut bad) = (Vec::new(), Vec::new());
                let (mut ids, mut sends) = (Vec::new(), Vec::new());
                for entry in &entries {
                    let id = entry.get("Id").and_then(Value::as_str).unwrap_or_default().to_owned();
                    match send_of(entry) {
                        Ok(send) => {
                            ids.push(id);
                            sends.push(send);
                        }
                        Err(err) => bad.push(failed(&id, &err)),
                    }
                }
                for (id, result) in ids.into_iter().zip(q.send_batch(&name, sends)?) {
                    match result {
                        Ok(sent) => {
                            let mut out = sent_json(&sent, fifo);
                            out.insert("Id".into(), json!(id));
                            ok.push(Value::Object(out));
                        }
                        Err(err) => bad.push(failed(&id, &SqsError::from(err))),
                    }
                }
                Ok(json!({"Successful": ok, "Failed": bad}))
            })
            .await
        }
        "DeleteMessageBatch" => {
            let name = queue_of(&input)?;
            let entries = entries(&input)?.clone();
            inline(&q, |q| {
                let (mut ok, mut bad) = (Vec::new(), Vec::new());
                let (mut ids, mut handles) = (Vec::new(), Vec::new());
                for entry in &entries {
                    let id = entry.get("Id").and_then(Value::as_str).unwrap_or_default().to_owned();
                    match str_field(entry, "ReceiptHandle") {
                        Ok(handle) => {
                            ids.push(id);
                            handles.push(handle);
                        }
                        Err(err) => bad.push(failed(&id, &err)),
                    }
                }
                for (id, result) in ids.into_iter().zip(q.delete_batch(&name, &handles)?) {
                    match result {
                        Ok(()) => ok.push(json!({"Id": id})),
                        Err(err) => bad.push(failed(&id, &SqsError::from(err))),
                    }
                }
                Ok(json!({"Successful": ok, "Failed": bad}))
            })
            .await
        }
        "ReceiveMessage" => receive(cx, input).await,
        "DeleteMessage" => {
            let name = queue_of(&input)?;
            let handle = str_field(&input, "ReceiptHandle")?.to_owned();
            inline(&q, |q| q.delete(&name, &handle)).await?;
            Ok(json!({}))
        }
        "ChangeMessageVisibilityBatch" => {
            let name = queue_of(&input)?;
            let entries = entries(&input)?.clone();
            inline(&q, |q| {
                let (mut ok, mut bad) = (Vec::new(), Vec::new());
                for entry in entries {
                    let id = entry.get("Id").and_then(Value::as_str).unwrap_or_default().to_owned();
                    let result = str_field(&entry, "ReceiptHandle").and_then(|h| {
                        let secs = int_field(&entry, "VisibilityTimeout")?
                            .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
                        q.change_visibility(&name, h, secs).map_err(SqsError::from)
                    });
                    match result {
                        Ok(()) => ok.push(json!({"Id": id})),
                        Err(err) => bad.push(failed(&id, &err)),
                    }
                }
                Ok(json!({"Successful": ok, "Failed": bad}))
            })
            .await
        }
        "ChangeMessageVisibility" => {
            let name = queue_of(&input)?;
            let handle = str_field(&input, "ReceiptHandle")?.to_owned();
            let secs = int_field(&input, "VisibilityTimeout")?
                .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
            inline(&q, |q| q.change_visibility(&name, &handle, secs)).await?;
            Ok(json!({}))
        }
        "ListDeadLetterSourceQueues" => {
            let name = queue_of(&input)?;
            let sources = blocking(move || q.dead_letter_sources(&name)).await?;
            Ok(json!({"queueUrls": sources.iter().map(|s| cx.url(s)).collect::<Vec<_>>()}))
        }
        "TagQueue" | "UntagQueue" => {
            let name = queue_of(&input)?;
            let tags: Vec<(String, String)> = input
                .get("Tags")
                .and_then(Value::as_object)
                .map(|t| {
                    t.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect()
                })
                .unwrap_or_default();
            let keys: Vec<String> = input
                .get("TagKeys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let tag = action == "TagQueue";
            blocking(move || {
                q.update_queue(&name, |meta| {
                    if tag {
                        meta.tags.extend(tags.iter().cloned());
                    } else {
                        for k in &keys {
                            meta.tags.remove(k);
                        }
                    }
                    Ok(())
                })
            })
            .await?;
            Ok(json!({}))
        }
        "ListQueueTags" => {
            let name = queue_of(&input)?;
            let meta = blocking(move || q.queue(&name)).await?;
            Ok(json!({"Tags": meta.tags}))
        }
        "StartMessageMoveTask" => {
            let source_arn = str_field(&input, "SourceArn")?.to_owned();
            let source = queue_of_arn(&source_arn)?;
            let destination_arn = input.get("DestinationArn").and_then(Value::as_str).map(str::to_owned);
            let destination = destination_arn.as_deref().map(queue_of_arn).transpose()?;
            let rate = int_field(&input, "MaxNumberOfMessagesPerSecond")?;
            if rate.is_some_and(|r| r == 0 || r > 500) {
                return Err(SqsError::invalid("MaxNumberOfMessagesPerSecond must be 1 to 500"));
            }
            // Checked now, so that a bad request fails here rather than in the task.
            let (q2, s2, d2) = (q.clone(), source.clone(), destination.clone());
            blocking(move || {
                if let Some(d) = &d2 {
                    q2.queue(d)?;
                } else if q2.dead_letter_sources(&s2)?.is_empty() {
                    return Err(strata_queue::QueueError::InvalidParameter(
                        "the queue is no dead-letter queue of any queue: name a destination".into(),
                    ));
                }
                q2.queue(&s2).map(drop)
            })
            .await?;
            let (q2, s2) = (q.clone(), source.clone());
            let to_move = blocking(move || q2.counts(&s2).map(|c| c.visible)).await?;
            match cx.moves.start(q, source, source_arn, destination, destination_arn, rate, to_move) {
                Ok(handle) => Ok(json!({"TaskHandle": handle})),
                Err(_) => Err(SqsError::new(
                    "UnsupportedOperation",
                    "AWS.SimpleQueueService.UnsupportedOperation",
                    "a message move task is already running for this queue",
                )),
            }
        }
        "ListMessageMoveTasks" => {
            let source = queue_of_arn(str_field(&input, "SourceArn")?)?;
            let max = int_field(&input, "MaxResults")?.unwrap_or(1);
            if !(1..=10).contains(&max) {
                return Err(SqsError::invalid("MaxResults must be 1 to 10"));
            }
            let name = source.clone();
            blocking(move || q.queue(&name)).await?;
            Ok(json!({"Results": cx.moves.list(&source, max as usize)}))
        }
        "CancelMessageMoveTask" => match cx.moves.cancel(str_field(&input, "TaskHandle")?) {
            Ok(moved) => Ok(json!({"ApproximateNumberOfMessagesMoved": moved})),
            Err(_) => Err(SqsError::new(
                "ResourceNotFoundException",
                "ResourceNotFoundException",
                "no running message move task has this handle",
            )),
        },
        other => Err(SqsError::new(
            "InvalidAction",
            "InvalidAction",
            format!("the action {other} is not valid for this endpoint"),
        )),
    }
}

/// ReceiveMessage, with long polling: waits up to `WaitTimeSeconds` (or the queue's
/// default) for a message, woken by sends and rechecking every 200 ms for messages that
/// become visible with time.
async fn receive(cx: Context, input: Value) -> Result<Value, SqsError> {
    let name = queue_of(&input)?;
    let max = int_field(&input, "MaxNumberOfMessages")?.unwrap_or(1) as usize;
    let visibility = int_field(&input, "VisibilityTimeout")?;
    let wait = int_field(&input, "WaitTimeSeconds")?;
    if wait.is_some_and(|w| w > 20) {
        return Err(SqsError::invalid("WaitTimeSeconds must be 0 to 20"));
    }
    let names = |key: &str| -> Vec<String> {
        input
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let mut system_wanted = names("AttributeNames");
    system_wanted.extend(names("MessageSystemAttributeNames"));
    let attr_wanted = names("MessageAttributeNames");
    let (q, n) = (cx.queues.clone(), name.clone());
    let wait = match wait {
        Some(w) => w,
        None => blocking(move || q.queue(&n)).await?.attributes.receive_wait_secs,
    };
    let deadline = Instant::now() + Duration::from_secs(wait);
    let waiter = cx.queues.waiter(&name);
    let received = loop {
        let notified = waiter.notified();
        let got = inline(&cx.queues, |q| q.receive(&name, max, visibility)).await?;
        let now = Instant::now();
        if !got.is_empty() || now >= deadline {
            break got;
        }
        let _ = tokio::time::timeout((deadline - now).min(Duration::from_millis(200)), notified).await;
    };
    let all_system = system_wanted.iter().any(|w| w == "All");
    let all_attrs = attr_wanted.iter().any(|w| w == "All" || w == ".*");
    let messages: Vec<Value> = received
        .into_iter()
        .map(|r| {
            let m = r.message;
            let mut system = vec![
                ("SentTimestamp", m.sent_ms.to_string()),
                ("ApproximateReceiveCount", m.receive_count.to_string()),
                ("ApproximateFirstReceiveTimestamp", m.first_receive_ms.unwrap_or(m.sent_ms).to_string()),
                ("SenderId", cx.config.access_key.clone()),
            ];
            if let Some(g) = &m.group {
                system.push(("MessageGroupId", g.clone()));
                system.push(("SequenceNumber", format!("{:020}", m.seq)));
            }
            if let Some(d) = &m.dedup_id {
                system.push(("MessageDeduplicationId", d.clone()));
            }
            let system: Map<String, Value> = system
                .into_iter()
                .filter(|(k, _)| all_system || system_wanted.iter().any(|w| w == k))
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            let picked: BTreeMap<String, MessageAttribute> = m
                .attributes
                .iter()
                .filter(|(k, _)| all_attrs || attr_wanted.iter().any(|w| w == *k || (w.ends_with(".*") && k.starts_with(&w[..w.len() - 2]))))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut out = json!({"MessageId": m.id, "ReceiptHandle": r.receipt_handle, "MD5OfBody": m.md5_of_body, "Body": m.body});
            if !system.is_empty() {
                out["Attributes"] = Value::Object(system);
            }
            if !picked.is_empty() {
                let attrs: Map<String, Value> = picked
                    .iter()
                    .map(|(k, a)| {
                        let mut v = json!({"DataType": a.data_type});
                        if let Some(s) = &a.string_value {
                            v["StringValue"] = json!(s);
                        }
                        if let Some(b) = &a.binary_value {
                            v["BinaryValue"] = json!(BASE64.encode(b));
                        }
                        (k.clone(), v)
                    })
                    .collect();
                out["MessageAttributes"] = Value::Object(attrs);
                out["MD5OfMessageAttributes"] = json!(strata_queue::md5_of_attributes(&picked));
            }
            out
        })
        .collect();
    Ok(json!({"Messages": messages}))
}
