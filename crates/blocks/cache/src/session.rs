//! One client connection: authentication, the selected database, RESP version, MULTI/EXEC
//! with WATCH, pub/sub subscriptions, blocking pops, and the server commands that depend on
//! the connection (HELLO, CLIENT, SELECT, INFO, CONFIG, COMMAND).

use crate::commands::{self, Blocking, COMMANDS, Command, Ctx, eq, lookup};
use crate::keyspace::Policy;
use crate::pubsub::QUEUE_LIMIT;
use crate::reply::{Reply, errors};
use crate::{ClientInfo, REDIS_VERSION, Shared, scripting};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

pub struct Session {
    shared: Arc<Shared>,
    id: u64,
    db: usize,
    protocol: u8,
    authenticated: bool,
    /// Queued commands while in MULTI; `Some` means a transaction is open.
    multi: Option<Vec<(&'static Command, Vec<Bytes>)>>,
    /// A queued command was rejected: EXEC must abort.
    multi_failed: bool,
    /// WATCHed keys with the version each had.
    watched: Vec<(usize, Bytes, Option<u64>)>,
    channels: Vec<Bytes>,
    patterns: Vec<Bytes>,
    /// Where pub/sub delivers this client's messages.
    subscriber: crate::pubsub::Subscriber,
    push_rx: Option<mpsc::Receiver<Reply>>,
    wake: Arc<Notify>,
    closing: bool,
    /// The command the last plain request named (see [`Session::fast_path`]).
    last_command: Option<&'static Command>,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, addr: &str) -> Session {
        let id = shared.next_id();
        let (push_tx, push_rx) = mpsc::channel(QUEUE_LIMIT);
        shared.total_connections.fetch_add(1, Ordering::Relaxed);
        let disconnect = Arc::new(crate::Disconnect::default());
        let info = ClientInfo {
            addr: addr.to_string(),
            created: shared.clock.now_ms(),
            resp: 2,
            disconnect: disconnect.clone(),
            ..ClientInfo::default()
        };
        shared.clients.lock().insert(id, info);
        let authenticated = shared.options.password.is_none();
        Session {
            shared,
            id,
            db: 0,
            protocol: 2,
            authenticated,
            multi: None,
            multi_failed: false,
            watched: Vec::new(),
            channels: Vec::new(),
            patterns: Vec::new(),
            subscriber: crate::pubsub::Subscriber { tx: push_tx, disconnect },
            push_rx: Some(push_rx),
            wake: Arc::new(Notify::new()),
            closing: false,
            last_command: None,
        }
    }

    /// RESP version in use: 2, or 3 after `HELLO 3`.
    pub fn protocol(&self) -> u8 {
        self.protocol
    }

    /// Whether the client may run commands (no password set, or AUTH succeeded).
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// Whether the connection is to close: the client asked (QUIT), another killed it
    /// (CLIENT KILL), or it fell too far behind its pub/sub messages.
    pub fn closing(&self) -> bool {
        self.closing || self.subscriber.disconnect.is_set()
    }

    /// Set when the connection is to close from outside (`disconnect.rs`); the front waits
    /// on it while idle or writing.
    pub fn disconnect(&self) -> Arc<crate::Disconnect> {
        self.subscriber.disconnect.clone()
    }

    /// Keeps CLIENT LIST's `sub`/`psub` current.
    fn count_subscriptions(&self) {
        if let Some(c) = self.shared.clients.lock().get_mut(&self.id) {
            (c.sub, c.psub) = (self.channels.len(), self.patterns.len());
        }
    }

    /// Pub/sub messages for this client; the front takes it once and writes what arrives.
    pub fn take_pushes(&mut self) -> Option<mpsc::Receiver<Reply>> {
        self.push_rx.take()
    }

    fn subscribed(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty()
    }

    /// Runs pipelined commands in order, appending one reply per command to `replies` with
    /// the RESP version to encode it in (a HELLO in the batch changes it for what follows).
    /// Consecutive plain keyspace commands run under one acquisition of the lock (as Redis
    /// runs a whole read buffer in one event-loop turn); anything else goes through
    /// [`Session::execute`]. Stops after QUIT.
    ///
    /// The commands run are taken out of `batch`, so its caller can refill it without
    /// allocating. Returns `true` when it stopped, with replies pending, before a command
    /// that may wait (a blocking read, or any command while a pause may be in force): the
    /// caller sends those replies first, as Redis writes a client's replies once it blocks,
    /// and calls again for the rest.
    pub async fn execute_batch(
        &mut self,
        batch: &mut Vec<Vec<Bytes>>,
        replies: &mut Vec<(Reply, u8)>,
    ) -> bool {
        let mut taken = 0;
        let mut stopped = false;
        let mut last = self.last_command;
        while taken < batch.len() {
            if self.closing {
                taken = batch.len();
                break;
            }
            // While a CLIENT PAUSE may be in force, every command goes the way that waits.
            let paused = self.shared.pause.maybe();
            let fast = if paused { None } else { self.fast_path(&batch[taken], &mut last) };
            let Some(cmd) = fast else {
                if !replies.is_empty() && (paused || may_block(&batch[taken])) {
                    stopped = true;
                    break;
                }
                let args = std::mem::take(&mut batch[taken]);
                taken += 1;
                let reply = self.execute(args).await;
                replies.push((reply, self.protocol));
                continue;
            };
            let args = std::mem::take(&mut batch[taken]);
            taken += 1;
            let mut ticket = None;
            let mut ran = 1;
            {
                let mut ks = match self.shared.lock_ks() {
                    Ok(ks) => ks,
                    Err(busy) => {
                        replies.push((busy, self.protocol));
                        continue;
                    }
                };
                // The batch reads the clock once, as Redis's commands of one event-loop
                // round share its cached time.
                ks.read_clock();
                // Each command's end is the next one's start: one clock read per command.
                let mut started = Instant::now();
                let mut next = Some((cmd, args));
                while let Some((cmd, args)) = next.take() {
                    ks.begin_at_same_time();
                    let (reply, t, ended) = self.run_begun(&mut ks, cmd, &args, started);
                    started = ended;
                    replies.push((reply, self.protocol));
                    ticket = t.or(ticket);
                    if let Some(following) = batch.get(taken)
                        && !self.shared.pause.maybe()
                        && let Some(cmd) = self.fast_path(following, &mut last)
                    {
                        ran += 1;
                        next = Some((cmd, std::mem::take(&mut batch[taken])));
                        taken += 1;
                    }
                }
            }
            // Once per run of commands: the counter is shared by every I/O thread.
            self.shared.total_commands.fetch_add(ran, Ordering::Relaxed);
            self.await_ticket(ticket).await;
        }
        batch.drain(..taken);
        self.last_command = last;
        stopped
    }

    /// The command, if it is a plain keyspace command this session can run right away.
    /// `last` is the command the previous plain request named: a client usually repeats one,
    /// and comparing its name costs less than looking it up.
    fn fast_path(&self, args: &[Bytes], last: &mut Option<&'static Command>) -> Option<&'static Command> {
        let name = args.first()?;
        let cmd = match *last {
            Some(cmd) if cmd.is_named(name) => cmd,
            _ => {
                let cmd = lookup(name)?;
                *last = Some(cmd);
                cmd
            }
        };
        let plain = cmd.handler.is_some()
            && !cmd.is_blocking()
            && cmd.arity_ok(args.len())
            && self.authenticated
            && self.multi.is_none()
            && !(self.protocol == 2 && self.subscribed());
        plain.then_some(cmd)
    }

    /// Runs one keyspace command with the lock held, after the caller began it
    /// (`Keyspace::begin`) at `started`; returns its reply, durability ticket and the time
    /// it ended.
    fn run_begun(
        &self,
        ks: &mut crate::keyspace::Keyspace,
        cmd: &'static Command,
        args: &[Bytes],
        started: Instant,
    ) -> (Reply, Option<u64>, Instant) {
        let (reply, ended) = self.run_command(ks, cmd, args, started);
        // Evictions made while failing to make room are writes too.
        let touched = ks.finish();
        let ticket = self.shared.after_write(ks, &touched);
        ks.recycle(touched);
        (reply, ticket, ended)
    }

    /// Puts the command in the slow log and the latency monitor if it ran long enough.
    fn time_command(&self, args: &[Bytes], fast: bool, took: Duration) {
        let micros = took.as_micros() as u64;
        if self.shared.latency.threshold_ms() > 0 {
            self.shared.latency.command(fast, micros, self.shared.clock.now_ms() / 1000);
        }
        if self.shared.slowlog.is_slow(micros) {
            let (addr, name) = match self.shared.clients.lock().get(&self.id) {
                Some(c) => (c.addr.clone(), c.name.clone()),
                None => Default::default(),
            };
            let at = self.shared.clock.now_ms() / 1000;
            self.shared.slowlog.push(args, micros, at, &addr, &name);
        }
    }

    /// The body of a keyspace command, between `begin` and `finish`: the persisted-key bound,
    /// eviction for commands that may grow memory, then the handler. It is timed for the slow
    /// log and the latency monitor here, so the commands of EXEC are timed one by one, as
    /// Redis times them. Returns the reply and the time the command ended.
    fn run_command(
        &self,
        ks: &mut crate::keyspace::Keyspace,
        cmd: &'static Command,
        args: &[Bytes],
        started: Instant,
    ) -> (Reply, Instant) {
        let max_key = crate::persist::MAX_KEY_BYTES;
        let reply = if self.shared.persister.is_some() && cmd.keys(args).iter().any(|k| k.len() > max_key) {
            Reply::err(format!(
                "ERR key longer than {max_key} bytes cannot be persisted (cache.persistence = \"log\")"
            ))
        } else if cmd.deny_oom() && ks.make_room().is_err() {
            Reply::err(errors::OOM)
        } else {
            let mut ctx =
                Ctx { name: cmd.name, ks, db: self.db, max_bulk: self.shared.options.max_bulk_bytes };
            commands::run(cmd, &mut ctx, args)
        };
        let ended = Instant::now();
        self.time_command(args, cmd.flags.contains(&"fast"), ended.saturating_duration_since(started));
        (reply, ended)
    }

    /// Runs one command (`args[0]` is its name) and returns the reply.
    pub async fn execute(&mut self, args: Vec<Bytes>) -> Reply {
        let Some(first) = args.first() else { return Reply::err("ERR empty command") };
        self.shared.total_commands.fetch_add(1, Ordering::Relaxed);
        let Some(cmd) = lookup(first) else {
            self.fail_multi();
            return Reply::err(errors::unknown_command(first, &args[1..]));
        };
        if !cmd.arity_ok(args.len()) {
            self.fail_multi();
            return Reply::err(errors::arity(cmd.name));
        }
        if !self.authenticated && !matches!(cmd.name, "auth" | "hello" | "quit" | "reset") {
            return Reply::err("NOAUTH Authentication required.");
        }
        if self.protocol == 2
            && self.subscribed()
            && !matches!(
                cmd.name,
                "subscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
            )
        {
            return Reply::err(format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                cmd.name
            ));
        }
        if let Some(queue) = &mut self.multi
            && !matches!(cmd.name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset")
        {
            if cmd.flags.contains(&"pubsub") && cmd.name != "publish" && cmd.name != "pubsub" {
                self.multi_failed = true;
                return Reply::err("ERR Command not allowed inside a transaction");
            }
            queue.push((cmd, args));
            return Reply::status("QUEUED");
        }
        if self.shared.pause.maybe() {
            self.shared.pause.wait(cmd).await;
        }
        self.dispatch(cmd, args).await
    }

    fn fail_multi(&mut self) {
        if self.multi.is_some() {
            self.multi_failed = true;
        }
    }

    async fn dispatch(&mut self, cmd: &'static Command, args: Vec<Bytes>) -> Reply {
        match cmd.name {
            "ping" => self.ping(&args),
            "select" => self.select(&args[1]),
            "auth" => self.auth(&args),
            "hello" => self.hello(&args),
            "quit" => {
                self.closing = true;
                Reply::OK
            }
            "reset" => self.reset(),
            "client" => self.client(&args),
            "info" => self.info(&args),
            "config" => self.config(&args),
            "command" => command_info(&args),
            "debug" => self.debug(&args).await,
            "swapdb" => self.swapdb(&args).await,
            "multi" => self.multi(),
            "exec" => self.exec().await,
            "discard" => self.discard(),
            "watch" => self.watch(&args),
            "unwatch" => {
                self.watched.clear();
                Reply::OK
            }
            "subscribe" | "psubscribe" => self.subscribe(&args, cmd.name == "psubscribe"),
            "unsubscribe" | "punsubscribe" => self.unsubscribe(&args, cmd.name == "punsubscribe"),
            "publish" => Reply::Int(self.shared.pubsub.lock().publish(&args[1], &args[2])),
            "pubsub" => self.pubsub(&args),
            "slowlog" => self.shared.slowlog.command(&args),
            "latency" => self.shared.latency.run(&args),
            _ if cmd.is_blocking() => self.blocking(cmd, &args).await,
            "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => {
                self.eval(cmd, &args).await
            }
            "script" => self.script(&args),
            "function" => {
                let (reply, change) = self.function(&args);
                match (change, &self.shared.persister) {
                    (Some(change), Some(p)) => persist_library(p.store().clone(), change, reply).await,
                    _ => reply,
                }
            }
            _ => self.run(cmd, &args).await,
        }
    }

    /// Runs a keyspace command under the lock, then waits for durability if it wrote.
    async fn run(&mut self, cmd: &'static Command, args: &[Bytes]) -> Reply {
        let (reply, ticket) = {
            let mut ks = match self.shared.lock_ks() {
                Ok(ks) => ks,
                Err(busy) => return busy,
            };
            ks.begin();
            let (reply, ticket, _) = self.run_begun(&mut ks, cmd, args, Instant::now());
            (reply, ticket)
        };
        self.await_ticket(ticket).await;
        reply
    }

    /// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO: `name script|sha|function
    /// numkeys key... arg...`.
    async fn eval(&mut self, cmd: &'static Command, args: &[Bytes]) -> Reply {
        let numkeys = match commands::int(&args[2]) {
            Ok(n) if n >= 0 && (n as usize) <= args.len() - 3 => n as usize,
            Ok(n) if n < 0 => return Reply::err("ERR Number of keys can't be negative"),
            Ok(_) => return Reply::err("ERR Number of keys can't be greater than number of args"),
            Err(e) => return e,
        };
        let (keys, argv) = args[3..].split_at(numkeys);
        let read_only = cmd.name.ends_with("_ro");
        let target = match cmd.name {
            "eval" | "eval_ro" => match self.shared.scripting.lock().load(&args[1]) {
                Ok(sha) => scripting::Target::Script(sha),
                Err(e) => return e,
            },
            "evalsha" | "evalsha_ro" => {
                scripting::Target::Script(String::from_utf8_lossy(&args[1]).to_ascii_lowercase())
            }
            _ => scripting::Target::Function(String::from_utf8_lossy(&args[1]).into_owned()),
        };
        let shared = self.shared.clone();
        let db = self.db;
        let (keys, argv) = (keys.to_vec(), argv.to_vec());
        // A script can run for long: it runs on the blocking pool, so the thread serving this
        // connection goes on serving the others (SCRIPT KILL among them).
        let run = move || {
            let mut ks = shared.lock_ks()?;
            let mut scripting = shared.scripting.lock();
            ks.begin();
            let status = &shared.script_status;
            status.wrote.store(false, Ordering::Release);
            status.kill.store(false, Ordering::Release);
            status.started_ms.store(ks.now().max(1), Ordering::Release);
            let started = Instant::now();
            let outcome = scripting.run(
                target,
                &mut ks,
                db,
                &keys,
                &argv,
                read_only,
                shared.options.max_bulk_bytes,
                status,
            );
            let took = started.elapsed();
            status.started_ms.store(0, Ordering::Release);
            let ticket = shared.after_write(&ks, &outcome.touched);
            Ok((outcome, ticket, took))
        };
        let (outcome, ticket, took) = match tokio::task::spawn_blocking(run).await {
            Ok(Ok(done)) => done,
            Ok(Err(busy)) => return busy,
            Err(err) => return Reply::err(format!("ERR the script's thread failed: {err}")),
        };
        self.time_command(args, false, took);
        self.await_ticket(ticket).await;
        outcome.reply
    }

    /// SCRIPT LOAD | EXISTS | FLUSH | KILL
    fn script(&mut self, args: &[Bytes]) -> Reply {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        match (sub.as_str(), args.len()) {
            ("kill", 2) => {
                let status = &self.shared.script_status;
                if status.started_ms.load(Ordering::Acquire) == 0 {
                    Reply::err("NOTBUSY No scripts in execution right now.")
                } else if status.wrote.load(Ordering::Acquire) {
                    Reply::err(
                        "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
                    )
                } else {
                    status.kill.store(true, Ordering::Release);
                    Reply::OK
                }
            }
            ("load", 3) => match self.shared.scripting.lock().load(&args[2]) {
                Ok(sha) => Reply::text(&sha),
                Err(e) => e,
            },
            ("exists", n) if n >= 3 => {
                let scripting = self.shared.scripting.lock();
                Reply::Array(args[2..].iter().map(|sha| Reply::Int(scripting.exists(sha) as i64)).collect())
            }
            ("flush", 2 | 3) => {
                self.shared.scripting.lock().flush();
                Reply::OK
            }
            _ => Reply::err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try SCRIPT HELP.",
                String::from_utf8_lossy(&args[1])
            )),
        }
    }

    /// FUNCTION LOAD [REPLACE] code | FLUSH | LIST | DELETE name | KILL. Returns the reply
    /// and the library change to persist, if any.
    fn function(&mut self, args: &[Bytes]) -> (Reply, Option<LibraryChange>) {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        match sub.as_str() {
            "load" if args.len() == 3 || (args.len() == 4 && eq(&args[2], "replace")) => {
                let code = &args[args.len() - 1];
                match self.shared.scripting.lock().function_load(code, args.len() == 4) {
                    Ok(name) => {
                        let change =
                            LibraryChange::Save(name.clone(), String::from_utf8_lossy(code).into_owned());
                        (Reply::text(&name), Some(change))
                    }
                    Err(e) => (e, None),
                }
            }
            "flush" if args.len() <= 3 => {
                self.shared.scripting.lock().function_flush();
                (Reply::OK, Some(LibraryChange::Clear))
            }
            "list" => (self.shared.scripting.lock().function_list(), None),
            "delete" if args.len() == 3 => {
                let name = String::from_utf8_lossy(&args[2]).into_owned();
                if self.shared.scripting.lock().function_delete(&name) {
                    (Reply::OK, Some(LibraryChange::Delete(name)))
                } else {
                    (Reply::err("ERR Library not found"), None)
                }
            }
            "kill" if args.len() == 2 => (self.script(&[args[0].clone(), Bytes::from_static(b"kill")]), None),
            _ => (
                Reply::err(format!(
                    "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
                    String::from_utf8_lossy(&args[1])
                )),
                None,
            ),
        }
    }

    /// Waits until the write with `ticket` is durable (when persisting).
    async fn await_ticket(&self, ticket: Option<u64>) {
        if let (Some(ticket), Some(p)) = (ticket, &self.shared.persister) {
            p.wait_durable(ticket).await;
        }
    }

    fn ping(&self, args: &[Bytes]) -> Reply {
        if args.len() > 2 {
            return Reply::err(errors::arity("ping"));
        }
        if self.protocol == 2 && self.subscribed() {
            return Reply::Array(vec![
                Reply::text("pong"),
                Reply::Bulk(args.get(1).cloned().unwrap_or_default()),
            ]);
        }
        match args.get(1) {
            Some(msg) => Reply::Bulk(msg.clone()),
            None => Reply::status("PONG"),
        }
    }

    fn select(&mut self, arg: &[u8]) -> Reply {
        match commands::int(arg) {
            Ok(n) if n >= 0 && (n as usize) < self.shared.options.databases => {
                self.db = n as usize;
                if let Some(c) = self.shared.clients.lock().get_mut(&self.id) {
                    c.db = self.db;
                }
                Reply::OK
            }
            Ok(_) => Reply::err(errors::DB_INDEX),
            Err(e) => e,
        }
    }

    /// `user` is None for the one-argument `AUTH password` form.
    fn check_password(&mut self, user: Option<&[u8]>, password: &[u8]) -> Result<(), Reply> {
        let Some(expected) = &self.shared.options.password else {
            // Without a password the default user is "nopass": naming it always works.
            if user == Some(b"default".as_slice()) {
                return Ok(());
            }
            return Err(Reply::err(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        };
        if user.unwrap_or(b"default") == b"default" && password == expected.as_bytes() {
            self.authenticated = true;
            Ok(())
        } else {
            Err(Reply::err("WRONGPASS invalid username-password pair or user is disabled."))
        }
    }

    fn auth(&mut self, args: &[Bytes]) -> Reply {
        let result = match args.len() {
            2 => self.check_password(None, &args[1]),
            3 => self.check_password(Some(&args[1]), &args[2]),
            _ => Err(Reply::err(errors::SYNTAX)),
        };
        result.map_or_else(|e| e, |_| Reply::OK)
    }

    /// HELLO [protover [AUTH username password] [SETNAME clientname]]
    fn hello(&mut self, args: &[Bytes]) -> Reply {
        let mut protocol = self.protocol;
        if let Some(v) = args.get(1) {
            match commands::int(v) {
                Ok(2) => protocol = 2,
                Ok(3) => protocol = 3,
                Ok(_) => return Reply::err("NOPROTO unsupported protocol version"),
                Err(_) => return Reply::err("ERR Protocol version is not an integer or out of range"),
            }
        }
        let mut name = None;
        let mut i = 2;
        while i < args.len() {
            if eq(&args[i], "auth") && i + 2 < args.len() {
                if let Err(e) = self.check_password(Some(&args[i + 1]), &args[i + 2]) {
                    return e;
                }
                i += 3;
            } else if eq(&args[i], "setname") && i + 1 < args.len() {
                name = Some(String::from_utf8_lossy(&args[i + 1]).into_owned());
                i += 2;
            } else {
                return Reply::err(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&args[i])
                ));
            }
        }
        if !self.authenticated {
            return Reply::err(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        self.protocol = protocol;
        if let Some(c) = self.shared.clients.lock().get_mut(&self.id) {
            c.resp = protocol;
            if let Some(name) = name {
                c.name = name;
            }
        }
        Reply::Map(vec![
            (Reply::text("server"), Reply::text("redis")),
            (Reply::text("version"), Reply::text(REDIS_VERSION)),
            (Reply::text("proto"), Reply::Int(protocol as i64)),
            (Reply::text("id"), Reply::Int(self.id as i64)),
            (Reply::text("mode"), Reply::text("standalone")),
            (Reply::text("role"), Reply::text("master")),
            (Reply::text("modules"), Reply::Array(Vec::new())),
        ])
    }

    fn reset(&mut self) -> Reply {
        self.multi = None;
        self.multi_failed = false;
        self.watched.clear();
        self.unsubscribe_all();
        self.db = 0;
        self.protocol = 2;
        self.authenticated = self.shared.options.password.is_none();
        Reply::status("RESET")
    }

    fn client(&mut self, args: &[Bytes]) -> Reply {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        let mut clients = self.shared.clients.lock();
        match (sub.as_str(), args.len()) {
            ("id", 2) => Reply::Int(self.id as i64),
            ("getname", 2) => {
                let name = clients.get(&self.id).map(|c| c.name.clone()).unwrap_or_default();
                if name.is_empty() { Reply::Nil } else { Reply::text(&name) }
            }
            ("setname", 3) => {
                if args[2].iter().any(|b| *b <= b' ' || *b > b'~') {
                    return Reply::err(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                if let Some(c) = clients.get_mut(&self.id) {
                    c.name = String::from_utf8_lossy(&args[2]).into_owned();
                }
                Reply::OK
            }
            ("setinfo", 4) => {
                let value = String::from_utf8_lossy(&args[3]).into_owned();
                let Some(c) = clients.get_mut(&self.id) else { return Reply::OK };
                if eq(&args[2], "lib-name") {
                    c.lib_name = value;
                } else if eq(&args[2], "lib-ver") {
                    c.lib_ver = value;
                } else {
                    return Reply::err(format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(&args[2])
                    ));
                }
                Reply::OK
            }
            ("list", _) | ("info", 2) => {
                let now = self.shared.clock.now_ms();
                let line = |id: &u64, c: &ClientInfo| {
                    format!(
                        "id={id} addr={} laddr= fd=0 name={} age={} idle=0 flags={} db={} sub={} psub={} multi=-1 qbuf=0 obl=0 oll=0 omem=0 events=r cmd=client|list user=default lib-name={} lib-ver={} resp={}\n",
                        c.addr,
                        c.name,
                        now.saturating_sub(c.created) / 1000,
                        if c.subscribed() { "P" } else { "N" },
                        c.db,
                        c.sub,
                        c.psub,
                        c.lib_name,
                        c.lib_ver,
                        c.resp
                    )
                };
                let text: String = if sub == "info" {
                    clients.get(&self.id).map(|c| line(&self.id, c)).unwrap_or_default()
                } else {
                    clients.iter().map(|(id, c)| line(id, c)).collect()
                };
                Reply::Verbatim(text)
            }
            ("kill", 3) => {
                // The old form: CLIENT KILL addr:port.
                let found = clients.values().find(|c| c.addr.as_bytes() == &args[2][..]);
                match found {
                    Some(c) => {
                        c.disconnect.set();
                        Reply::OK
                    }
                    None => Reply::err("ERR No such client"),
                }
            }
            ("kill", _) => match kill_filter(&args[2..]) {
                Ok(filter) => {
                    let now = self.shared.clock.now_ms();
                    let mut killed = 0;
                    for (id, c) in clients.iter() {
                        if filter.matches(*id, c, self.id, now) {
                            c.disconnect.set();
                            killed += 1;
                        }
                    }
                    Reply::Int(killed)
                }
                Err(e) => e,
            },
            ("pause", 3 | 4) => {
                let Some(ms) = std::str::from_utf8(&args[2]).ok().and_then(|s| s.parse::<u64>().ok()) else {
                    return Reply::err("ERR timeout is not an integer or out of range");
                };
                let writes_only = match args.get(3).map(|m| String::from_utf8_lossy(m).to_ascii_lowercase()) {
                    None => false,
                    Some(mode) if mode == "all" => false,
                    Some(mode) if mode == "write" => true,
                    Some(_) => return Reply::err("ERR syntax error"),
                };
                self.shared.pause.start(ms, writes_only);
                Reply::OK
            }
            ("unpause", 2) => {
                self.shared.pause.end();
                Reply::OK
            }
            ("no-evict" | "no-touch", 3) => Reply::OK,
            ("reply", 3) => Reply::OK,
            _ => Reply::err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(&args[1])
            )),
        }
    }

    fn info(&self, args: &[Bytes]) -> Reply {
        let section = args.get(1).map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
        let pubsub = self.shared.pubsub.lock();
        let facts = commands::server::ServerFacts {
            version: REDIS_VERSION,
            tcp_port: self.shared.options.tcp_port,
            uptime_secs: self.shared.started.elapsed().as_secs(),
            connected_clients: self.shared.connected_clients(),
            blocked_clients: self.shared.blocked.load(Ordering::Relaxed),
            total_connections: self.shared.total_connections.load(Ordering::Relaxed),
            total_commands: self.shared.total_commands.load(Ordering::Relaxed),
            pubsub_channels: pubsub.channel_count(),
            pubsub_patterns: pubsub.pattern_count(),
            persistence: if self.shared.persister.is_some() { "log" } else { "none" },
        };
        drop(pubsub);
        let ks = match self.shared.lock_ks() {
            Ok(ks) => ks,
            Err(busy) => return busy,
        };
        Reply::Verbatim(commands::info_text(&ks, &facts, section.as_deref()))
    }

    fn config(&mut self, args: &[Bytes]) -> Reply {
        let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
        match sub.as_str() {
            "get" if args.len() >= 3 => {
                let ks = match self.shared.lock_ks() {
                    Ok(ks) => ks,
                    Err(busy) => return busy,
                };
                let s = &ks.settings;
                let params: Vec<(&str, String)> = vec![
                    ("maxmemory", s.maxmemory.to_string()),
                    ("maxmemory-policy", s.policy.name().to_string()),
                    ("maxmemory-samples", s.samples.to_string()),
                    ("lfu-log-factor", s.lfu_log_factor.to_string()),
                    ("lfu-decay-time", s.lfu_decay_minutes.to_string()),
                    ("databases", self.shared.options.databases.to_string()),
                    ("proto-max-bulk-len", self.shared.options.max_bulk_bytes.to_string()),
                    ("port", self.shared.options.tcp_port.to_string()),
                    ("appendonly", if self.shared.persister.is_some() { "yes" } else { "no" }.to_string()),
                    ("save", String::new()),
                    ("timeout", "0".to_string()),
                    ("hz", "10".to_string()),
                    ("maxclients", "10000".to_string()),
                    ("slowlog-log-slower-than", self.shared.slowlog.slower_than().to_string()),
                    ("slowlog-max-len", self.shared.slowlog.max_len().to_string()),
                    ("latency-monitor-threshold", self.shared.latency.threshold_ms().to_string()),
                ];
                let mut out = Vec::new();
                for (name, value) in params {
                    if args[2..]
                        .iter()
                        .any(|p| crate::glob::matches(&p.to_ascii_lowercase(), name.as_bytes()))
                    {
                        out.push((Reply::text(name), Reply::text(&value)));
                    }
                }
                Reply::Map(out)
            }
            "set" if args.len() >= 4 && args.len().is_multiple_of(2) => {
                let mut ks = match self.shared.lock_ks() {
                    Ok(ks) => ks,
                    Err(busy) => return busy,
                };
                let mut settings = ks.settings.clone();
                let (mut slower_than, mut max_len, mut latency) = (None, None, None);
                for pair in args[2..].chunks(2) {
                    let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                    let value = String::from_utf8_lossy(&pair[1]).to_string();
                    let bad = || {
                        Reply::err(format!(
                            "ERR CONFIG SET failed (possibly related to argument '{name}') - argument couldn't be parsed into an integer"
                        ))
                    };
                    match name.as_str() {
                        "maxmemory" => match parse_memory(&value) {
                            Some(n) => settings.maxmemory = n,
                            None => return bad(),
                        },
                        "maxmemory-policy" => match Policy::parse(&value) {
                            Some(p) => settings.policy = p,
                            None => {
                                return Reply::err(format!(
                                    "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: {}",
                                    Policy::ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                                ));
                            }
                        },
                        "maxmemory-samples" => match value.parse::<usize>() {
                            Ok(n) if (1..=64).contains(&n) => settings.samples = n,
                            _ => return bad(),
                        },
                        "lfu-log-factor" => match value.parse() {
                            Ok(n) => settings.lfu_log_factor = n,
                            _ => return bad(),
                        },
                        "lfu-decay-time" => match value.parse() {
                            Ok(n) => settings.lfu_decay_minutes = n,
                            _ => return bad(),
                        },
                        "slowlog-log-slower-than" => match value.parse() {
                            Ok(n) => slower_than = Some(n),
                            _ => return bad(),
                        },
                        "slowlog-max-len" => match value.parse() {
                            Ok(n) => max_len = Some(n),
                            _ => return bad(),
                        },
                        "latency-monitor-threshold" => match value.parse() {
                            Ok(n) => latency = Some(n),
                            _ => return bad(),
                        },
                        "save" | "appendonly" | "timeout" | "hz" => {}
                        _ => {
                            return Reply::err(format!(
                                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                            ));
                        }
                    }
                }
                ks.settings = settings;
                // Applied once every pair parsed, as the keyspace settings are.
                if let Some(n) = slower_than {
                    self.shared.slowlog.set_slower_than(n);
                }
                if let Some(n) = max_len {
                    self.shared.slowlog.set_max_len(n);
                }
                if let Some(n) = latency {
                    self.shared.latency.set_threshold_ms(n);
                }
                Reply::OK
            }
            "resetstat" if args.len() == 2 => {
                match self.shared.lock_ks() {
                    Ok(mut ks) => ks.stats = Default::default(),
                    Err(busy) => return busy,
                }
                Reply::OK
            }
            "rewrite" => Reply::err("ERR The server is running without a config file"),
            _ => Reply::err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
                String::from_utf8_lossy(&args[1])
            )),
        }
    }

    async fn debug(&mut self, args: &[Bytes]) -> Reply {
        if eq(&args[1], "sleep") && args.len() == 3 {
            let Some(secs) = commands::parse_float(&args[2]).filter(|s| *s >= 0.0 && *s < 3600.0) else {
                return Reply::err(errors::NOT_FLOAT);
            };
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            return Reply::OK;
        }
        Reply::err(format!("ERR DEBUG subcommand '{}' is not supported", String::from_utf8_lossy(&args[1])))
    }

    async fn swapdb(&mut self, args: &[Bytes]) -> Reply {
        let n = self.shared.options.databases as i64;
        let (a, b) = match (commands::int(&args[1]), commands::int(&args[2])) {
            (Ok(a), Ok(b)) if (0..n).contains(&a) && (0..n).contains(&b) => (a as usize, b as usize),
            (Ok(_), Ok(_)) => return Reply::err(errors::DB_INDEX),
            _ => return Reply::err("ERR invalid first DB index"),
        };
        let ticket = {
            let mut ks = match self.shared.lock_ks() {
                Ok(ks) => ks,
                Err(busy) => return busy,
            };
            ks.begin();
            ks.swap(a, b);
            let touched = ks.finish();
            self.shared.after_write(&ks, &touched)
        };
        self.await_ticket(ticket).await;
        Reply::OK
    }

    fn multi(&mut self) -> Reply {
        if self.multi.is_some() {
            return Reply::err("ERR MULTI calls can not be nested");
        }
        self.multi = Some(Vec::new());
        self.multi_failed = false;
        Reply::OK
    }

    fn discard(&mut self) -> Reply {
        if self.multi.take().is_none() {
            return Reply::err("ERR DISCARD without MULTI");
        }
        self.watched.clear();
        Reply::OK
    }

    fn watch(&mut self, args: &[Bytes]) -> Reply {
        if self.multi.is_some() {
            return Reply::err("ERR WATCH inside MULTI is not allowed");
        }
        let mut ks = match self.shared.lock_ks() {
            Ok(ks) => ks,
            Err(busy) => return busy,
        };
        ks.begin();
        for key in &args[1..] {
            let version = ks.version(self.db, key);
            self.watched.push((self.db, key.clone(), version));
        }
        // Looking at the keys may have expired some: record those deletions like any write.
        let touched = ks.finish();
        self.shared.after_write(&ks, &touched);
        Reply::OK
    }

    /// EXEC: runs the queued commands atomically unless a WATCHed key changed.
    async fn exec(&mut self) -> Reply {
        let Some(queue) = self.multi.take() else { return Reply::err("ERR EXEC without MULTI") };
        let watched = std::mem::take(&mut self.watched);
        if self.multi_failed {
            self.multi_failed = false;
            return Reply::err("EXECABORT Transaction discarded because of previous errors.");
        }
        let mut replies = Vec::with_capacity(queue.len());
        let mut all_touched = Vec::new();
        let shared = self.shared.clone();
        let ticket = {
            let mut ks = match shared.lock_ks() {
                Ok(ks) => ks,
                Err(busy) => return busy,
            };
            ks.begin();
            if watched.iter().any(|(db, key, version)| ks.version(*db, key) != *version) {
                let touched = ks.finish();
                self.shared.after_write(&ks, &touched);
                return Reply::NilArray;
            }
            for (cmd, args) in &queue {
                ks.begin();
                let reply = match cmd.name {
                    "select" => self.select(&args[1]),
                    "ping" => self.ping(args),
                    "publish" => Reply::Int(self.shared.pubsub.lock().publish(&args[1], &args[2])),
                    _ if cmd.is_blocking() => {
                        let mut ctx = Ctx {
                            name: cmd.name,
                            ks: &mut ks,
                            db: self.db,
                            max_bulk: self.shared.options.max_bulk_bytes,
                        };
                        match commands::try_blocking(&mut ctx, args) {
                            Ok(Some(r)) => r,
                            Ok(None) => nothing_to_pop(cmd),
                            Err(e) => e,
                        }
                    }
                    _ if cmd.handler.is_none() => {
                        Reply::err(format!("ERR '{}' is not supported inside MULTI", cmd.name))
                    }
                    _ => self.run_command(&mut ks, cmd, args, Instant::now()).0,
                };
                all_touched.extend(ks.finish());
                replies.push(reply);
            }
            self.shared.after_write(&ks, &all_touched)
        };
        self.await_ticket(ticket).await;
        Reply::Array(replies)
    }

    fn subscribe(&mut self, args: &[Bytes], pattern: bool) -> Reply {
        let mut out = Vec::new();
        let mut pubsub = self.shared.pubsub.lock();
        for channel in &args[1..] {
            if pubsub.subscribe(self.id, channel.clone(), &self.subscriber, pattern) {
                if pattern {
                    self.patterns.push(channel.clone())
                } else {
                    self.channels.push(channel.clone())
                }
            }
            let kind = if pattern { "psubscribe" } else { "subscribe" };
            out.push(Reply::Push(vec![
                Reply::text(kind),
                Reply::Bulk(channel.clone()),
                Reply::Int((self.channels.len() + self.patterns.len()) as i64),
            ]));
        }
        drop(pubsub);
        self.count_subscriptions();
        Reply::Many(out)
    }

    fn unsubscribe(&mut self, args: &[Bytes], pattern: bool) -> Reply {
        let kind = if pattern { "punsubscribe" } else { "unsubscribe" };
        let targets: Vec<Bytes> = if args.len() > 1 {
            args[1..].to_vec()
        } else if pattern {
            self.patterns.clone()
        } else {
            self.channels.clone()
        };
        let mut pubsub = self.shared.pubsub.lock();
        let mut out = Vec::new();
        for channel in &targets {
            pubsub.unsubscribe(self.id, channel, pattern);
            let list = if pattern { &mut self.patterns } else { &mut self.channels };
            list.retain(|c| c != channel);
            out.push(Reply::Push(vec![
                Reply::text(kind),
                Reply::Bulk(channel.clone()),
                Reply::Int((self.channels.len() + self.patterns.len()) as i64),
            ]));
        }
        if out.is_empty() {
            out.push(Reply::Push(vec![
                Reply::text(kind),
                Reply::Nil,
                Reply::Int((self.channels.len() + self.patterns.len()) as i64),
            ]));
        }
        drop(pubsub);
        self.count_subscriptions();
        Reply::Many(out)
    }

    fn unsubscribe_all(&mut self) {
        let mut pubsub = self.shared.pubsub.lock();
        for c in self.channels.drain(..) {
            pubsub.unsubscribe(self.id, &c, false);
        }
        for p in self.patterns.drain(..) {
            pubsub.unsubscribe(self.id, &p, true);
        }
    }

    fn pubsub(&self, args: &[Bytes]) -> Reply {
        let pubsub = self.shared.pubsub.lock();
        match String::from_utf8_lossy(&args[1]).to_ascii_lowercase().as_str() {
            "channels" if args.len() <= 3 => Reply::bulks(pubsub.channels(args.get(2).map(|p| p.as_ref()))),
            "numsub" => {
                let mut out = Vec::new();
                for c in &args[2..] {
                    out.push(Reply::Bulk(c.clone()));
                    out.push(Reply::Int(pubsub.numsub(c) as i64));
                }
                Reply::Array(out)
            }
            "numpat" if args.len() == 2 => Reply::Int(pubsub.pattern_count() as i64),
            _ => Reply::err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                String::from_utf8_lossy(&args[1])
            )),
        }
    }

    /// The blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX,
    /// BZMPOP) and stream reads (XREAD, XREADGROUP): try, and if there is nothing to answer
    /// wait for a write to one of the keys or for the timeout. XREAD's `$` is resolved at
    /// the first try, so later tries wait for entries added after the command began.
    async fn blocking(&mut self, cmd: &'static Command, args: &[Bytes]) -> Reply {
        let Blocking { timeout, keys } = match commands::blocking_shape(cmd.name, args) {
            Ok(Some(shape)) => shape,
            Ok(None) => return self.run(cmd, args).await,
            Err(err) => return err,
        };
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut resolved: Option<Vec<Bytes>> = None;
        loop {
            let (outcome, ticket) = {
                let mut ks = match self.shared.lock_ks() {
                    Ok(ks) => ks,
                    Err(busy) => return busy,
                };
                ks.begin();
                let mut ctx = Ctx {
                    name: cmd.name,
                    ks: &mut ks,
                    db: self.db,
                    max_bulk: self.shared.options.max_bulk_bytes,
                };
                let outcome = if cmd.name == "xread" && resolved.is_none() {
                    commands::resolve_dollar(&mut ctx, args)
                        .and_then(|args| commands::try_blocking(&mut ctx, resolved.insert(args)))
                } else {
                    commands::try_blocking(&mut ctx, resolved.as_deref().unwrap_or(args))
                };
                let touched = ks.finish();
                let ticket = self.shared.after_write(&ks, &touched);
                if matches!(outcome, Ok(None)) {
                    let mut waiters = self.shared.waiters.lock();
                    for key in &keys {
                        waiters.entry((self.db, key.clone())).or_default().push((self.id, self.wake.clone()));
                        self.shared.waiting.fetch_add(1, Ordering::Relaxed);
                    }
                }
                (outcome, ticket)
            };
            match outcome {
                Ok(Some(reply)) => {
                    self.await_ticket(ticket).await;
                    return reply;
                }
                Err(e) => return e,
                Ok(None) => {}
            }
            self.shared.blocked.fetch_add(1, Ordering::Relaxed);
            let woken = match deadline {
                Some(d) => tokio::time::timeout_at(d, self.wake.notified()).await.is_ok(),
                None => {
                    self.wake.notified().await;
                    true
                }
            };
            self.shared.blocked.fetch_sub(1, Ordering::Relaxed);
            self.forget_waits(&keys);
            if !woken {
                return nothing_to_pop(cmd);
            }
        }
    }

    fn forget_waits(&self, keys: &[Bytes]) {
        let mut waiters = self.shared.waiters.lock();
        for key in keys {
            let k = (self.db, key.clone());
            if let Some(list) = waiters.get_mut(&k) {
                let before = list.len();
                list.retain(|(id, _)| *id != self.id);
                self.shared.waiting.fetch_sub(before - list.len(), Ordering::Relaxed);
                if list.is_empty() {
                    waiters.remove(&k);
                }
            }
        }
    }
}

/// What a blocking pop answers when it times out (or, inside MULTI, finds nothing).
fn nothing_to_pop(cmd: &Command) -> Reply {
    if matches!(cmd.name, "blmove" | "brpoplpush") { Reply::Nil } else { Reply::NilArray }
}

/// A FUNCTION library change to make durable.
enum LibraryChange {
    Save(String, String),
    Delete(String),
    Clear,
}

/// Writes a library change through core (off the async workers) before `reply` goes out.
async fn persist_library(store: strata_core::Store, change: LibraryChange, reply: Reply) -> Reply {
    use crate::persist::Persister;
    let result = tokio::task::spawn_blocking(move || match change {
        LibraryChange::Save(name, code) => Persister::save_library(&store, &name, Some(&code)),
        LibraryChange::Delete(name) => Persister::save_library(&store, &name, None),
        LibraryChange::Clear => Persister::clear_libraries(&store),
    })
    .await;
    match result {
        Ok(Ok(())) => reply,
        Ok(Err(err)) => Reply::err(format!("ERR persisting the function library failed: {err}")),
        Err(err) => Reply::err(format!("ERR persisting the function library failed: {err}")),
    }
}

/// Whether a request names a command that may wait for other clients (BLPOP, XREAD BLOCK).
fn may_block(args: &[Bytes]) -> bool {
    args.first().and_then(|name| lookup(name)).is_some_and(|cmd| cmd.is_blocking())
}

impl Drop for Session {
    fn drop(&mut self) {
        self.unsubscribe_all();
        self.shared.clients.lock().remove(&self.id);
        let mut waiters = self.shared.waiters.lock();
        let mut gone = 0;
        waiters.retain(|_, list| {
            let before = list.len();
            list.retain(|(id, _)| *id != self.id);
            gone += before - list.len();
            !list.is_empty()
        });
        self.shared.waiting.fetch_sub(gone, Ordering::Relaxed);
    }
}

/// The filters of `CLIENT KILL <filter> <value> ...`; all must match.
#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    /// `Some(true)`: pub/sub clients only; `Some(false)`: the others.
    pubsub: Option<bool>,
    max_age_secs: Option<u64>,
    /// Whether the calling client is spared (SKIPME, default yes).
    skip_me: bool,
}

impl KillFilter {
    fn matches(&self, id: u64, c: &ClientInfo, me: u64, now_ms: u64) -> bool {
        !(self.skip_me && id == me)
            && self.id.is_none_or(|want| want == id)
            && self.addr.as_ref().is_none_or(|a| *a == c.addr)
            && self.pubsub.is_none_or(|p| p == c.subscribed())
            && self.max_age_secs.is_none_or(|m| now_ms.saturating_sub(c.created) / 1000 >= m)
    }
}

fn kill_filter(args: &[Bytes]) -> Result<KillFilter, Reply> {
    if args.is_empty() || !args.len().is_multiple_of(2) {
        return Err(Reply::err("ERR syntax error"));
    }
    let mut filter = KillFilter { skip_me: true, ..KillFilter::default() };
    for pair in args.chunks(2) {
        let value = String::from_utf8_lossy(&pair[1]).into_owned();
        let number =
            || value.parse::<u64>().map_err(|_| Reply::err("ERR client-id should be greater than 0"));
        match String::from_utf8_lossy(&pair[0]).to_ascii_lowercase().as_str() {
            "id" => filter.id = Some(number()?),
            "addr" => filter.addr = Some(value),
            "maxage" => filter.max_age_secs = Some(number()?),
            "user" if value == "default" => {}
            "user" => return Err(Reply::err(format!("ERR No such user '{value}'"))),
            "type" => {
                filter.pubsub = match value.to_ascii_lowercase().as_str() {
                    "normal" => Some(false),
                    "pubsub" => Some(true),
                    // No replication here: no master or replica clients to match.
                    "master" | "replica" | "slave" => {
                        filter.id = Some(0);
                        None
                    }
                    _ => return Err(Reply::err(format!("ERR Unknown client type '{value}'"))),
                }
            }
            "skipme" => {
                filter.skip_me = match value.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(Reply::err("ERR syntax error")),
                }
            }
            _ => return Err(Reply::err("ERR syntax error")),
        }
    }
    Ok(filter)
}

/// `100`, `100kb`, `64mb`, `1gb` (k/m/g are powers of 1000, kb/mb/gb of 1024, as in Redis).
pub fn parse_memory(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits.parse().ok()?;
    let mul = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// COMMAND, COMMAND COUNT | LIST | INFO name... | GETKEYS cmd args...
///
/// COMMAND DOCS is refused as Redis 6 refuses it: redis-cli then builds its argument hints
/// from the help compiled into it, where docs without argument specs would leave it none.
fn command_info(args: &[Bytes]) -> Reply {
    let info = |c: &Command| {
        Reply::Array(vec![
            Reply::text(c.name),
            Reply::Int(c.arity as i64),
            Reply::Set(c.flags.iter().map(|f| Reply::status(f)).collect()),
            Reply::Int(c.first_key as i64),
            Reply::Int(c.last_key as i64),
            Reply::Int(c.step as i64),
            Reply::Set(Vec::new()),
            Reply::Set(Vec::new()),
            Reply::Array(Vec::new()),
            Reply::Array(Vec::new()),
        ])
    };
    let Some(sub) = args.get(1) else { return Reply::Array(COMMANDS.iter().map(info).collect()) };
    match String::from_utf8_lossy(sub).to_ascii_lowercase().as_str() {
        "count" => Reply::Int(COMMANDS.len() as i64),
        "help" => Reply::help(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST",
            "    Return a list of all commands in this server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple commands.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
            "HELP",
            "    Print this help.",
        ]),
        "list" => Reply::Array(COMMANDS.iter().map(|c| Reply::text(c.name)).collect()),
        "info" if args.len() == 2 => Reply::Array(COMMANDS.iter().map(info).collect()),
        "info" => Reply::Array(args[2..].iter().map(|n| lookup(n).map_or(Reply::NilArray, info)).collect()),
        "getkeys" if args.len() >= 3 => match lookup(&args[2]) {
            Some(c) if c.arity_ok(args.len() - 2) => {
                let keys = c.keys(&args[2..]);
                if keys.is_empty() {
                    Reply::err("ERR The command has no key arguments")
                } else {
                    Reply::bulks(keys.into_iter().cloned())
                }
            }
            Some(_) => Reply::err("ERR Invalid number of arguments specified for command"),
            None => Reply::err("ERR Invalid command specified"),
        },
        _ => Reply::err(errors::unknown_subcommand("COMMAND", sub)),
    }
}
