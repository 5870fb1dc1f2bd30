//! The sqs front over real HTTP, every request signed with SigV4 by AWS's own signer
//! (`aws-sigv4`) the way SDKs sign SQS's JSON protocol.

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use strata_core::{Store, SystemClock};
use strata_queue::{Limits, Queues};

struct Server {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(limits: Limits) -> Server {
    start_with(limits, strata_sqs::SqsConfig::default()).await
}

async fn start_with(limits: Limits, config: strata_sqs::SqsConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("core"), strata_core::Options::default()).unwrap();
    let queues = Queues::open(store, Arc::new(SystemClock), limits).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(strata_sqs::serve(listener, queues, config, async {
        let _ = stopped.await;
    }));
    Server { addr, _stop: stop, _dir: dir }
}

/// Calls `action` with `input`, signed with `secret`; returns the status, the JSON body and
/// the x-amzn-query-error header.
async fn call_with(
    server: &Server,
    secret: &str,
    action: &str,
    input: Value,
) -> (u16, Value, Option<String>) {
    let target = format!("AmazonSQS.{action}");
    let headers = [("content-type", "application/x-amz-json-1.0"), ("x-amz-target", target.as_str())];
    let builder = signed_post(server, secret, input.to_string(), &headers);
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let query_error = response.headers().get("x-amzn-query-error").map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), query_error)
}

/// A POST of `body` with `headers`, signed for SQS with `secret` by AWS's signer.
fn signed_post(
    server: &Server,
    secret: &str,
    body: String,
    headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let url = format!("http://{}/", server.addr);
    let host = server.addr.to_string();
    let mut signed = vec![("host", host.as_str())];
    signed.extend_from_slice(headers);
    let identity = aws_credential_types::Credentials::new("strata", secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sqs")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable =
        SignableRequest::new("POST", &url, signed.into_iter(), SignableBody::Bytes(body.as_bytes())).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().method("POST").uri(&url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    let mut builder = reqwest::Client::new().post(&url).body(body);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    for (name, value) in request.headers() {
        builder = builder.header(name.as_str(), value.to_str().unwrap());
    }
    builder
}

async fn call(server: &Server, action: &str, input: Value) -> Value {
    let (status, body, _) = call_with(server, "strata-secret", action, input).await;
    assert_eq!(status, 200, "{action}: {body}");
    body
}

async fn error(server: &Server, action: &str, input: Value) -> (String, Option<String>) {
    let (status, body, query) = call_with(server, "strata-secret", action, input).await;
    assert_ne!(status, 200, "{action} should fail: {body}");
    (body["__type"].as_str().unwrap_or_default().to_owned(), query)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_receive_delete_with_attributes_and_md5s() {
    let server = start(Limits::default()).await;
    let url = call(&server, "CreateQueue", json!({"QueueName": "jobs"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(url, format!("http://{}/000000000000/jobs", server.addr));
    assert_eq!(call(&server, "GetQueueUrl", json!({"QueueName": "jobs"})).await["QueueUrl"], url.as_str());
    let sent = call(
        &server,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "resize photo 42",
               "MessageAttributes": {"size": {"DataType": "Number", "StringValue": "1024"}}}),
    )
    .await;
    // The digests SDKs check, computed independently (Python's hashlib over SQS's layout).
    assert_eq!(sent["MD5OfMessageBody"], "a210f24bf7aa256e62a30719602b991e");
    assert_eq!(sent["MD5OfMessageAttributes"], "025a292749dbfbf036b18b2ecf9d1e70");
    let got = call(
        &server,
        "ReceiveMessage",
        json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "MessageAttributeNames": ["All"], "AttributeNames": ["All"]}),
    )
    .await;
    let messages = got["Messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m["Body"], "resize photo 42");
    assert_eq!(m["MessageAttributes"]["size"]["StringValue"], "1024");
    assert_eq!(m["MD5OfMessageAttributes"], sent["MD5OfMessageAttributes"]);
    assert_eq!(m["Attributes"]["ApproximateReceiveCount"], "1");
    let attrs =
        call(&server, "GetQueueAttributes", json!({"QueueUrl": url, "AttributeNames": ["All"]})).await;
    assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"], "1");
    assert_eq!(attrs["Attributes"]["QueueArn"], "arn:aws:sqs:us-east-1:000000000000:jobs");
    call(&server, "DeleteMessage", json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]})).await;
    let attrs = call(&server, "GetQueueAttributes", json!({"QueueUrl": url})).await;
    assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"], "0");

    // Batches.
    let entries: Vec<Value> =
        (0..3).map(|i| json!({"Id": format!("e{i}"), "MessageBody": format!("m{i}")})).collect();
    let batch = call(&server, "SendMessageBatch", json!({"QueueUrl": url, "Entries": entries})).await;
    assert_eq!(batch["Successful"].as_array().unwrap().len(), 3);
    let got = call(&server, "ReceiveMessage", json!({"QueueUrl": url, "MaxNumberOfMessages": 10})).await;
    let handles: Vec<Value> = got["Messages"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"Id": format!("d{i}"), "ReceiptHandle": m["ReceiptHandle"]}))
        .collect();
    assert_eq!(handles.len(), 3);
    let deleted = call(&server, "DeleteMessageBatch", json!({"QueueUrl": url, "Entries": handles})).await;
    assert_eq!(deleted["Successful"].as_array().unwrap().len(), 3);
    let queues = call(&server, "ListQueues", json!({"QueueNamePrefix": "jo"})).await;
    assert_eq!(queues["QueueUrls"], json!([url]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_dead_letters_fifo_and_long_polling() {
    let server = start(Limits::default()).await;
    let dlq = call(&server, "CreateQueue", json!({"QueueName": "dead"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let redrive =
        json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:dead", "maxReceiveCount": 1})
            .to_string();
    let work =
        call(&server, "CreateQueue", json!({"QueueName": "work", "Attributes": {"RedrivePolicy": redrive}}))
            .await["QueueUrl"]
            .as_str()
            .unwrap()
            .to_owned();
    call(&server, "SendMessage", json!({"QueueUrl": work, "MessageBody": "poison"})).await;
    let first = call(&server, "ReceiveMessage", json!({"QueueUrl": work, "VisibilityTimeout": 0})).await;
    assert_eq!(first["Messages"].as_array().unwrap().len(), 1);
    let second = call(&server, "ReceiveMessage", json!({"QueueUrl": work})).await;
    assert!(second["Messages"].as_array().unwrap().is_empty(), "moved to the dead-letter queue");
    let parked = call(&server, "ReceiveMessage", json!({"QueueUrl": dlq, "VisibilityTimeout": 0})).await;
    assert_eq!(parked["Messages"][0]["Body"], "poison");
    let sources = call(&server, "ListDeadLetterSourceQueues", json!({"QueueUrl": dlq})).await;
    assert_eq!(sources["queueUrls"], json!([work]));

    // FIFO: order per group, deduplication.
    let fifo = call(
        &server,
        "CreateQueue",
        json!({"QueueName": "orders.fifo", "Attributes": {"FifoQueue": "true", "ContentBasedDeduplication": "true"}}),
    )
    .await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    for body in ["first", "second", "first"] {
        call(&server, "SendMessage", json!({"QueueUrl": fifo, "MessageBody": body, "MessageGroupId": "g"}))
            .await;
    }
    let got = call(&server, "ReceiveMessage", json!({"QueueUrl": fifo, "MaxNumberOfMessages": 10})).await;
    assert_eq!(got["Messages"].as_array().unwrap().len(), 1);
    assert_eq!(got["Messages"][0]["Body"], "first");
    call(
        &server,
        "DeleteMessage",
        json!({"QueueUrl": fifo, "ReceiptHandle": got["Messages"][0]["ReceiptHandle"]}),
    )
    .await;
    let got = call(&server, "ReceiveMessage", json!({"QueueUrl": fifo, "MaxNumberOfMessages": 10})).await;
    assert_eq!(got["Messages"][0]["Body"], "second");
    assert!(
        error(&server, "SendMessage", json!({"QueueUrl": fifo, "MessageBody": "x"}))
            .await
            .0
            .ends_with("InvalidParameterValue")
    );

    // Long polling: a receiver waiting on an empty queue gets a message sent meanwhile.
    let poll = call(&server, "CreateQueue", json!({"QueueName": "poll"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let waiter = {
        let (addr, poll) = (server.addr, poll.clone());
        tokio::spawn(async move {
            let server =
                Server { addr, _stop: tokio::sync::oneshot::channel().0, _dir: tempfile::tempdir().unwrap() };
            call(&server, "ReceiveMessage", json!({"QueueUrl": poll, "WaitTimeSeconds": 10})).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    call(&server, "SendMessage", json!({"QueueUrl": poll, "MessageBody": "wake up"})).await;
    let got =
        tokio::time::timeout(Duration::from_secs(9), waiter).await.expect("the long poll answered").unwrap();
    assert_eq!(got["Messages"][0]["Body"], "wake up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_sqs_errors_and_backpressure_throttles() {
    let server = start(Limits { max_depth: 2, ..Limits::default() }).await;
    let url = call(&server, "CreateQueue", json!({"QueueName": "q"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let (kind, query) =
        error(&server, "SendMessage", json!({"QueueUrl": "http://x/000000000000/nope", "MessageBody": "x"}))
            .await;
    assert_eq!(kind, "com.amazonaws.sqs#QueueDoesNotExist");
    assert_eq!(query.as_deref(), Some("AWS.SimpleQueueService.NonExistentQueue;Sender"));
    assert_eq!(
        error(&server, "SendMessage", json!({"QueueUrl": url})).await.0,
        "com.amazonaws.sqs#MissingParameter"
    );
    assert_eq!(error(&server, "Frobnicate", json!({})).await.0, "com.amazonaws.sqs#InvalidAction");
    let (kind, _) = error(&server, "DeleteMessage", json!({"QueueUrl": url, "ReceiptHandle": "bogus"})).await;
    assert_eq!(kind, "com.amazonaws.sqs#ReceiptHandleIsInvalid");
    let big = "x".repeat(256 * 1024 + 1);
    assert_eq!(
        error(&server, "SendMessage", json!({"QueueUrl": url, "MessageBody": big})).await.0,
        "com.amazonaws.sqs#InvalidParameterValue"
    );
    let (status, body, _) = call_with(&server, "wrong-secret", "ListQueues", json!({})).await;
    assert_eq!((status, body["__type"].as_str()), (403, Some("com.amazonaws.sqs#SignatureDoesNotMatch")));
    let unsigned = reqwest::Client::new()
        .post(format!("http://{}/", server.addr))
        .header("x-amz-target", "AmazonSQS.ListQueues")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    // Backpressure: the third message over a depth of two is refused with Retry-After.
    call(&server, "SendMessage", json!({"QueueUrl": url, "MessageBody": "1"})).await;
    call(&server, "SendMessage", json!({"QueueUrl": url, "MessageBody": "2"})).await;
    let (kind, _) = error(&server, "SendMessage", json!({"QueueUrl": url, "MessageBody": "3"})).await;
    assert_eq!(kind, "com.amazonaws.sqs#ThrottlingException");
    // The server keeps serving.
    let got = call(&server, "ReceiveMessage", json!({"QueueUrl": url, "MaxNumberOfMessages": 10})).await;
    assert_eq!(got["Messages"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_its_own_maximum_depth_throttles_the_overflow_of_a_batch() {
    let server = start(Limits::default()).await;
    let create = json!({"QueueName": "small", "Attributes": {"MaximumDepth": "3"}});
    let url = call(&server, "CreateQueue", create).await["QueueUrl"].as_str().unwrap().to_owned();
    let attributes =
        call(&server, "GetQueueAttributes", json!({"QueueUrl": url, "AttributeNames": ["All"]})).await;
    assert_eq!(attributes["Attributes"]["MaximumDepth"], "3");
    let entries: Vec<Value> =
        (0..5).map(|i| json!({"Id": format!("m{i}"), "MessageBody": format!("{i}")})).collect();
    let sent = call(&server, "SendMessageBatch", json!({"QueueUrl": url, "Entries": entries})).await;
    assert_eq!(sent["Successful"].as_array().unwrap().len(), 3);
    let failed = sent["Failed"].as_array().unwrap();
    assert_eq!(failed.len(), 2);
    assert!(failed.iter().all(|f| f["Code"] == "ThrottlingException"), "{failed:?}");
    // Out of range: refused, the queue unchanged; an empty value lifts the queue's own bound.
    let (kind, _) =
        error(&server, "SetQueueAttributes", json!({"QueueUrl": url, "Attributes": {"MaximumDepth": "0"}}))
            .await;
    assert_eq!(kind, "com.amazonaws.sqs#InvalidParameterValue");
    let (kind, _) = error(&server, "SendMessage", json!({"QueueUrl": url, "MessageBody": "x"})).await;
    assert_eq!(kind, "com.amazonaws.sqs#ThrottlingException");
    call(&server, "SetQueueAttributes", json!({"QueueUrl": url, "Attributes": {"MaximumDepth": ""}})).await;
    call(&server, "SendMessage", json!({"QueueUrl": url, "MessageBody": "fits now"})).await;
    let attributes =
        call(&server, "GetQueueAttributes", json!({"QueueUrl": url, "AttributeNames": ["All"]})).await;
    assert_eq!(attributes["Attributes"].get("MaximumDepth"), None);
    assert_eq!(attributes["Attributes"]["ApproximateNumberOfMessages"], "4");
}

/// The query protocol: a form-encoded request signed like an older SDK's, answered in XML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_protocol_forms_get_xml_answers() {
    let server = start(Limits::default()).await;
    let form = |pairs: &[(&str, &str)]| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let post = |body: String| {
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let builder = signed_post(&server, "strata-secret", body, &form);
        async move {
            let response = builder.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, xml) = post(form(&[
        ("Action", "CreateQueue"),
        ("QueueName", "legacy"),
        ("Attribute.1.Name", "VisibilityTimeout"),
        ("Attribute.1.Value", "5"),
    ]))
    .await;
    assert_eq!(status, 200, "{xml}");
    let url = format!("http://{}/000000000000/legacy", server.addr);
    assert!(xml.contains(&format!("<QueueUrl>{url}</QueueUrl>")), "{xml}");
    let (_, xml) = post(form(&[
        ("Action", "SendMessage"),
        ("QueueUrl", &url),
        ("MessageBody", "resize photo 42"),
        ("MessageAttribute.1.Name", "size"),
        ("MessageAttribute.1.Value.DataType", "Number"),
        ("MessageAttribute.1.Value.StringValue", "1024"),
    ]))
    .await;
    assert!(xml.contains("<MD5OfMessageBody>a210f24bf7aa256e62a30719602b991e</MD5OfMessageBody>"), "{xml}");
    assert!(
        xml.contains("<MD5OfMessageAttributes>025a292749dbfbf036b18b2ecf9d1e70</MD5OfMessageAttributes>"),
        "{xml}"
    );
    let (_, xml) =
        post(form(&[("Action", "ReceiveMessage"), ("QueueUrl", &url), ("MessageAttributeName.1", "All")]))
            .await;
    assert!(xml.contains("<Body>resize photo 42</Body>"), "{xml}");
    assert!(xml.contains("<MessageAttribute><Name>size</Name><Value><DataType>Number</DataType><StringValue>1024</StringValue></Value></MessageAttribute>"), "{xml}");
    let (_, xml) = post(form(&[
        ("Action", "GetQueueAttributes"),
        ("QueueUrl", &url),
        ("AttributeName.1", "VisibilityTimeout"),
    ]))
    .await;
    assert!(xml.contains("<Attribute><Name>VisibilityTimeout</Name><Value>5</Value></Attribute>"), "{xml}");
    let (status, xml) = post(form(&[("Action", "GetQueueUrl"), ("QueueName", "nope")])).await;
    assert_eq!(status, 400);
    assert!(xml.contains("<Code>AWS.SimpleQueueService.NonExistentQueue</Code>"), "{xml}");
}

/// Requests in flight are bounded: past `max_in_flight`, ServiceUnavailable with Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_are_bounded() {
    let config = strata_sqs::SqsConfig { max_in_flight: 1, ..strata_sqs::SqsConfig::default() };
    let server = start_with(Limits::default(), config).await;
    let url = call(&server, "CreateQueue", json!({"QueueName": "busy"})).await["QueueUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let poll = {
        let builder = signed_post(
            &server,
            "strata-secret",
            json!({"QueueUrl": url, "WaitTimeSeconds": 2}).to_string(),
            &[("content-type", "application/x-amz-json-1.0"), ("x-amz-target", "AmazonSQS.ReceiveMessage")],
        );
        tokio::spawn(builder.send())
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body, _) = call_with(&server, "strata-secret", "ListQueues", json!({})).await;
    assert_eq!((status, body["__type"].as_str()), (503, Some("com.amazonaws.sqs#ServiceUnavailable")));
    assert_eq!(poll.await.unwrap().unwrap().status(), 200, "the long poll itself finishes");
    call(&server, "ListQueues", json!({})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_move_tasks_redrive_list_and_cancel() {
    let server = start(Limits::default()).await;
    let arn = |q: &str| format!("arn:aws:sqs:us-east-1:000000000000:{q}");
    let url = |name: &str| {
        let server = &server;
        let name = name.to_owned();
        async move {
            call(server, "CreateQueue", json!({"QueueName": name})).await["QueueUrl"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let dlq = url("parked").await;
    let redrive = json!({"deadLetterTargetArn": arn("parked"), "maxReceiveCount": 3}).to_string();
    let work =
        call(&server, "CreateQueue", json!({"QueueName": "jobs", "Attributes": {"RedrivePolicy": redrive}}))
            .await["QueueUrl"]
            .as_str()
            .unwrap()
            .to_owned();
    let entries: Vec<Value> =
        (0..10).map(|i| json!({"Id": format!("m{i}"), "MessageBody": format!("job {i}")})).collect();
    for _ in 0..30 {
        call(&server, "SendMessageBatch", json!({"QueueUrl": dlq, "Entries": entries})).await;
    }
    // A slow task (5 messages a second) back to the source queue: running, listed, cancelled.
    let slow = call(
        &server,
        "StartMessageMoveTask",
        json!({"SourceArn": arn("parked"), "MaxNumberOfMessagesPerSecond": 5}),
    )
    .await["TaskHandle"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _) =
        call_with(&server, "strata-secret", "StartMessageMoveTask", json!({"SourceArn": arn("parked")}))
            .await;
    assert_eq!(status, 400, "one task per source queue at a time");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let listed =
        call(&server, "ListMessageMoveTasks", json!({"SourceArn": arn("parked"), "MaxResults": 10})).await;
    let task = &listed["Results"][0];
    assert_eq!(
        (task["TaskHandle"].as_str(), task["Status"].as_str()),
        (Some(slow.as_str()), Some("RUNNING"))
    );
    assert_eq!(task["ApproximateNumberOfMessagesToMove"], 300);
    let moved = task["ApproximateNumberOfMessagesMoved"].as_u64().unwrap();
    assert!((1..300).contains(&moved), "the rate holds it back: {moved}");
    let cancelled = call(&server, "CancelMessageMoveTask", json!({"TaskHandle": slow})).await;
    assert!(cancelled["ApproximateNumberOfMessagesMoved"].as_u64().unwrap() >= moved);
    let mut status = String::new();
    for _ in 0..100 {
        let listed = call(&server, "ListMessageMoveTasks", json!({"SourceArn": arn("parked")})).await;
        status = listed["Results"][0]["Status"].as_str().unwrap().to_owned();
        if status == "CANCELLED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "CANCELLED");
    let (status, _, _) =
        call_with(&server, "strata-secret", "CancelMessageMoveTask", json!({"TaskHandle": slow})).await;
    assert_eq!(status, 400, "a task that is not running cannot be cancelled");
    // A full-speed task moves the rest and completes; every message is in exactly one queue.
    call(&server, "StartMessageMoveTask", json!({"SourceArn": arn("parked")})).await;
    let mut done = Value::Null;
    for _ in 0..200 {
        let listed =
            call(&server, "ListMessageMoveTasks", json!({"SourceArn": arn("parked"), "MaxResults": 2})).await;
        if listed["Results"][0]["Status"] == "COMPLETED" {
            done = listed;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done["Results"].as_array().map(Vec::len), Some(2), "{done}");
    let attrs = |q: String| {
        let server = &server;
        async move {
            call(
                server,
                "GetQueueAttributes",
                json!({"QueueUrl": q, "AttributeNames": ["ApproximateNumberOfMessages"]}),
            )
            .await["Attributes"]["ApproximateNumberOfMessages"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }
    };
    assert_eq!((attrs(dlq.clone()).await, attrs(work.clone()).await), (0, 300));
    // Bad requests.
    let (status, _, _) =
        call_with(&server, "strata-secret", "ListMessageMoveTasks", json!({"SourceArn": arn("nope")})).await;
    assert_eq!(status, 400);
    let (status, _, _) =
        call_with(&server, "strata-secret", "StartMessageMoveTask", json!({"SourceArn": arn("jobs")})).await;
    assert_eq!(status, 400, "jobs is no dead-letter queue and no destination is named");
}
