//! The pg front at the byte level, for what client libraries hide: the exact CommandComplete
//! tags (libpq's `PQcmdTuples` rejects a malformed one; tokio-postgres reads only the last
//! word) and the order of extended-protocol replies.

use std::io::{Read, Write};
use std::net::TcpStream;
use strata_core::Store;
use strata_pg::PgConfig;
use strata_sql::Sql;

/// Starts a server on its own runtime thread and returns its port.
fn start() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let sql = Sql::open(Store::memory()).unwrap();
            let config = PgConfig { user: "strata".into(), password: None, max_connections: 4 };
            strata_pg::serve(listener, sql, config, std::future::pending()).await.unwrap();
        });
    });
    port
}

/// One frontend message: type byte, length, body.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(s: &str) -> Vec<u8> {
    let mut out = s.as_bytes().to_vec();
    out.push(0);
    out
}

/// Reads backend messages up to and including ReadyForQuery.
fn read_until_ready(stream: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut messages = Vec::new();
    loop {
        let mut head = [0u8; 5];
        stream.read_exact(&mut head).unwrap();
        let len = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        stream.read_exact(&mut body).unwrap();
        messages.push((head[0], body));
        if head[0] == b'Z' {
            return messages;
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut body = 196608u32.to_be_bytes().to_vec();
    for part in ["user", "strata", "database", "strata", ""] {
        body.extend(cstr(part));
    }
    let mut startup = (body.len() as u32 + 4).to_be_bytes().to_vec();
    startup.extend(body);
    stream.write_all(&startup).unwrap();
    read_until_ready(&mut stream);
    stream
}

fn tags(messages: &[(u8, Vec<u8>)]) -> Vec<String> {
    messages
        .iter()
        .filter(|(kind, _)| *kind == b'C')
        .map(|(_, body)| String::from_utf8(body[..body.len() - 1].to_vec()).unwrap())
        .collect()
}

#[test]
fn command_tags_carry_the_row_count_once() {
    let mut stream = connect(start());
    let query = "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2) RETURNING id; \
                 SELECT id FROM t; UPDATE t SET id = id + 10 RETURNING id; DELETE FROM t RETURNING id";
    stream.write_all(&message(b'Q', &cstr(query))).unwrap();
    let replies = read_until_ready(&mut stream);
    assert_eq!(tags(&replies), ["CREATE TABLE", "INSERT 0 2", "SELECT 2", "UPDATE 2", "DELETE 2"]);
}

#[test]
fn extended_replies_arrive_in_order_after_sync() {
    let mut stream = connect(start());
    stream.write_all(&message(b'Q', &cstr("CREATE TABLE t (id INT PRIMARY KEY, n INT)"))).unwrap();
    read_until_ready(&mut stream);

    // Parse, Bind ($1 = '5' as text), Describe portal, Execute, Sync: one packet.
    let mut batch = message(b'P', &[cstr("s"), cstr("INSERT INTO t VALUES ($1, 1)"), vec![0, 0]].concat());
    let bind =
        [cstr(""), cstr("s"), vec![0, 0], vec![0, 1], 1u32.to_be_bytes().to_vec(), b"5".to_vec(), vec![0, 0]];
    batch.extend(message(b'B', &bind.concat()));
    batch.extend(message(b'D', &[vec![b'P'], cstr("")].concat()));
    batch.extend(message(b'E', &[cstr(""), 0u32.to_be_bytes().to_vec()].concat()));
    batch.extend(message(b'S', &[]));
    let select = [cstr("q"), cstr("SELECT n FROM t WHERE id = 5"), vec![0, 0]].concat();
    batch.extend(message(b'P', &select));
    batch.extend(message(b'B', &[cstr(""), cstr("q"), vec![0, 0], vec![0, 0], vec![0, 0]].concat()));
    batch.extend(message(b'D', &[vec![b'P'], cstr("")].concat()));
    batch.extend(message(b'E', &[cstr(""), 0u32.to_be_bytes().to_vec()].concat()));
    batch.extend(message(b'S', &[]));
    stream.write_all(&batch).unwrap();

    let insert = read_until_ready(&mut stream);
    let kinds: Vec<u8> = insert.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, b"12nCZ", "ParseComplete, BindComplete, NoData, CommandComplete, ReadyForQuery");
    assert_eq!(tags(&insert), ["INSERT 0 1"]);

    let select = read_until_ready(&mut stream);
    let kinds: Vec<u8> = select.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds, b"12TDCZ",
        "ParseComplete, BindComplete, RowDescription, DataRow, CommandComplete, ReadyForQuery"
    );
    assert_eq!(tags(&select), ["SELECT 1"]);
    let data_row = &select[3].1;
    assert_eq!(&data_row[..2], &1u16.to_be_bytes(), "one column");
    assert_eq!(&data_row[6..], b"1", "n = 1 in text");
}
