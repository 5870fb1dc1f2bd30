//! Lua scripting: EVAL/EVALSHA/SCRIPT and FUNCTION/FCALL, on Lua 5.1 (mlua, vendored) as in
//! Redis. A script runs with the keyspace locked, so it is atomic; `redis.call` and
//! `redis.pcall` run commands through the same command table as clients do.
//!
//! Provided to scripts: `KEYS`, `ARGV`, `redis.call`, `redis.pcall`, `redis.error_reply`,
//! `redis.status_reply`, `redis.sha1hex`, `redis.log`, `cjson.encode`/`cjson.decode`, the
//! `bit` library (band bor bxor bnot lshift rshift arshift tobit tohex), `struct` (pack
//! unpack size) and `cmsgpack` (in `cmsgpack.rs`), written here over Rust because Redis
//! bundles them as C modules that vendored Lua does not include.
//!
//! Limits: a memory limit on the Lua heap; a running script checks every 100k instructions
//! whether SCRIPT KILL asked it to stop (only scripts that have not written can be killed,
//! as in Redis). Other clients get `-BUSY` once a script has run for `script_busy_ms`.

use crate::commands::{self, Ctx, lookup};
use crate::keyspace::Keyspace;
use crate::reply::{Reply, errors};
use bytes::Bytes;
use mlua::{HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// State other clients read while a script runs.
#[derive(Default)]
pub struct ScriptStatus {
    /// Start of the running script in ms since the Unix epoch; 0 when none runs.
    pub started_ms: AtomicU64,
    pub wrote: AtomicBool,
    pub kill: AtomicBool,
}

pub struct Scripting {
    lua: Lua,
    /// Script bodies by SHA1 (SCRIPT LOAD and EVAL both add).
    scripts: HashMap<String, mlua::Function>,
    /// FUNCTION libraries: name -> (code, function names).
    libraries: HashMap<String, (String, Vec<String>)>,
    functions: HashMap<String, mlua::Function>,
}

/// A script's reply and the keys it wrote (for the session to wake waiters and persist).
/// SELECT inside a script does not change the caller's database, as in Redis 7.
pub struct Outcome {
    pub reply: Reply,
    pub touched: Vec<(usize, Bytes)>,
}

pub fn sha1_hex(body: &[u8]) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

fn lua_err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

impl Scripting {
    pub fn new(memory_limit: usize, status: Arc<ScriptStatus>) -> Result<Scripting, String> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::new())
            .map_err(|e| e.to_string())?;
        install_libraries(&lua).map_err(|e| e.to_string())?;
        if memory_limit > 0 {
            lua.set_memory_limit(memory_limit).map_err(|e| e.to_string())?;
        }
        lua.set_hook(HookTriggers::new().every_nth_instruction(100_000), move |_, _| {
            if status.kill.swap(false, Ordering::AcqRel) {
                return Err(lua_err("ERR Script killed by user with SCRIPT KILL..."));
            }
            Ok(VmState::Continue)
        });
        Ok(Scripting { lua, scripts: HashMap::new(), libraries: HashMap::new(), functions: HashMap::new() })
    }

    /// SCRIPT LOAD: compiles and remembers `body`; returns its SHA1.
    pub fn load(&mut self, body: &[u8]) -> Result<String, Reply> {
        let sha = sha1_hex(body);
        if !self.scripts.contains_key(&sha) {
            let f = self.lua.load(body).set_name("@user_script").into_function().map_err(|e| {
                Reply::err(format!("ERR Error compiling script (new function): {}", clean(&e)))
            })?;
            self.scripts.insert(sha.clone(), f);
        }
        Ok(sha)
    }

    pub fn exists(&self, sha: &[u8]) -> bool {
        std::str::from_utf8(sha).is_ok_and(|s| self.scripts.contains_key(&s.to_ascii_lowercase()))
    }

    pub fn flush(&mut self) {
        self.scripts.clear();
    }

    pub fn function_flush(&mut self) {
        self.libraries.clear();
        self.functions.clear();
    }

    /// FUNCTION LOAD [REPLACE] code: runs the library's top level, which registers functions
    /// with `redis.register_function`.
    pub fn function_load(&mut self, code: &[u8], replace: bool) -> Result<String, Reply> {
        let text = std::str::from_utf8(code).map_err(|_| Reply::err("ERR Library code must be UTF-8"))?;
        let first = text.lines().next().unwrap_or("");
        let Some(header) = first.strip_prefix("#!") else {
            return Err(Reply::err("ERR Missing library metadata"));
        };
        let mut parts = header.split_whitespace();
        if parts.next() != Some("lua") {
            return Err(Reply::err("ERR Engine not found"));
        }
        let name = parts
            .find_map(|p| p.strip_prefix("name="))
            .ok_or_else(|| Reply::err("ERR Library name was not given"))?
            .to_string();
        if self.libraries.contains_key(&name) && !replace {
            return Err(Reply::err(format!("ERR Library '{name}' already exists")));
        }
        let registered: Arc<parking_lot::Mutex<Vec<(String, mlua::Function)>>> = Default::default();
        let redis: Table = self.lua.globals().get("redis").map_err(|e| Reply::err(format!("ERR {e}")))?;
        let sink = registered.clone();
        let register = self
            .lua
            .create_function(move |_, args: MultiValue| {
                let mut args = args.into_iter();
                let (name, f) = match (args.next(), args.next()) {
                    (Some(Value::String(n)), Some(Value::Function(f))) => (n.to_str()?.to_string(), f),
                    (Some(Value::Table(t)), None) => {
                        let n: String = t.get("function_name")?;
                        let f: mlua::Function = t.get("callback")?;
                        (n, f)
                    }
                    _ => return Err(lua_err("wrong arguments to redis.register_function")),
                };
                sink.lock().push((name, f));
                Ok(())
            })
            .map_err(|e| Reply::err(format!("ERR {e}")))?;
        redis.set("register_function", register).map_err(|e| Reply::err(format!("ERR {e}")))?;
        let body: String = text.lines().skip(1).collect::<Vec<_>>().join("\n");
        let result = self.lua.load(&body).set_name(format!("@{name}")).exec();
        let _ = redis.set("register_function", Value::Nil);
        result.map_err(|e| Reply::err(format!("ERR Error registering functions: {}", clean(&e))))?;
        let registered = std::mem::take(&mut *registered.lock());
        if registered.is_empty() {
            return Err(Reply::err("ERR No functions registered"));
        }
        for (fname, _) in &registered {
            let owner = self.libraries.iter().find(|(lib, (_, fs))| *lib != &name && fs.contains(fname));
            if owner.is_some() {
                return Err(Reply::err(format!("ERR Function {fname} already exists")));
            }
        }
        if let Some((_, old)) = self.libraries.remove(&name) {
            for f in old {
                self.functions.remove(&f);
            }
        }
        let names = registered.iter().map(|(n, _)| n.clone()).collect();
        for (fname, f) in registered {
            self.functions.insert(fname, f);
        }
        self.libraries.insert(name.clone(), (text.to_string(), names));
        Ok(name)
    }

    pub fn function_list(&self) -> Reply {
        Reply::Array(
            self.libraries
                .iter()
                .map(|(lib, (_, fs))| {
                    Reply::Map(vec![
                        (Reply::text("library_name"), Reply::text(lib)),
                        (Reply::text("engine"), Reply::text("LUA")),
                        (
                            Reply::text("functions"),
                            Reply::Array(
                                fs.iter()
                                    .map(|f| Reply::Map(vec![(Reply::text("name"), Reply::text(f))]))
                                    .collect(),
                            ),
                        ),
                    ])
                })
                .collect(),
        )
    }

    pub fn function_delete(&mut self, name: &str) -> bool {
        match self.libraries.remove(name) {
            Some((_, fs)) => {
                for f in fs {
                    self.functions.remove(&f);
                }
                true
            }
            None => false,
        }
    }

    /// Runs the script with SHA1 `sha` (EVALSHA; EVAL loads first) or the function `name`.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &mut self,
        target: Target,
        ks: &mut Keyspace,
        db: usize,
        keys: &[Bytes],
        argv: &[Bytes],
        read_only: bool,
        max_bulk: usize,
        status: &ScriptStatus,
    ) -> Outcome {
        let function = match &target {
            Target::Script(sha) => self.scripts.get(sha).cloned(),
            Target::Function(name) => self.functions.get(name).cloned(),
        };
        let Some(function) = function else {
            let reply = match target {
                Target::Script(_) => Reply::err("NOSCRIPT No matching script. Please use EVAL."),
                Target::Function(_) => Reply::err("ERR Function not found"),
            };
            return Outcome { reply, touched: Vec::new() };
        };
        let state = RefCell::new(CallState { ks, db, touched: Vec::new(), read_only, max_bulk, status });
        let lua = &self.lua;
        let result = lua.scope(|scope| {
            let redis: Table = lua.globals().get("redis")?;
            let call = scope.create_function_mut(|lua, args: MultiValue| {
                let reply = state.borrow_mut().call(args)?;
                match reply {
                    Reply::Error(e) => Err(lua_err(e)),
                    r => to_lua(lua, &r),
                }
            })?;
            let pcall = scope.create_function_mut(|lua, args: MultiValue| {
                let reply = match state.borrow_mut().call(args) {
                    Ok(r) => r,
                    Err(e) => Reply::Error(clean(&e)),
                };
                to_lua(lua, &reply)
            })?;
            redis.set("call", call)?;
            redis.set("pcall", pcall)?;
            let keys_table = lua.create_sequence_from(
                keys.iter().map(|k| lua.create_string(k)).collect::<Result<Vec<_>, _>>()?,
            )?;
            let argv_table = lua.create_sequence_from(
                argv.iter().map(|a| lua.create_string(a)).collect::<Result<Vec<_>, _>>()?,
            )?;
            let value = match target {
                Target::Script(_) => {
                    lua.globals().raw_set("KEYS", keys_table)?;
                    lua.globals().raw_set("ARGV", argv_table)?;
                    function.call::<Value>(())?
                }
                Target::Function(_) => function.call::<Value>((keys_table, argv_table))?,
            };
            let reply = from_lua(&value);
            redis.set("call", Value::Nil)?;
            redis.set("pcall", Value::Nil)?;
            Ok(reply)
        });
        let CallState { touched, .. } = state.into_inner();
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                let msg = clean(&e);
                if msg.split_whitespace().next().is_some_and(|w| w.chars().all(|c| c.is_ascii_uppercase())) {
                    Reply::Error(msg)
                } else {
                    Reply::Error(format!("ERR {msg}"))
                }
            }
        };
        Outcome { reply, touched }
    }
}

pub enum Target {
    Script(String),
    Function(String),
}

struct CallState<'a> {
    ks: &'a mut Keyspace,
    db: usize,
    touched: Vec<(usize, Bytes)>,
    read_only: bool,
    max_bulk: usize,
    status: &'a ScriptStatus,
}

impl CallState<'_> {
    fn call(&mut self, args: MultiValue) -> mlua::Result<Reply> {
        let mut argv = Vec::with_capacity(args.len());
        for a in args {
            argv.push(match a {
                Value::String(s) => Bytes::copy_from_slice(&s.as_bytes()),
                Value::Integer(n) => Bytes::from(n.to_string()),
                Value::Number(n) => Bytes::from(commands::fmt_float(n)),
                _ => return Err(lua_err("ERR Lua redis lib command arguments must be strings or integers")),
            });
        }
        let Some(name) = argv.first() else {
            return Err(lua_err("ERR Please specify at least one argument for this redis lib call"));
        };
        let Some(cmd) = lookup(name) else {
            return Err(lua_err("ERR Unknown Redis command called from script"));
        };
        if !cmd.arity_ok(argv.len()) {
            return Err(lua_err("ERR Wrong number of args calling Redis command from script"));
        }
        if cmd.name == "ping" {
            return Ok(Reply::status("PONG"));
        }
        if cmd.name == "select" {
            return Ok(match commands::int(&argv[1]) {
                Ok(n) if n >= 0 && (n as usize) < self.ks.databases() => {
                    self.db = n as usize;
                    Reply::OK
                }
                _ => Reply::err(errors::DB_INDEX),
            });
        }
        if cmd.handler.is_none() {
            return Err(lua_err("ERR This Redis command is not allowed from script"));
        }
        // XREAD and XREADGROUP run in scripts, but not with BLOCK (as in Redis).
        if cmd.is_blocking() && matches!(commands::blocking_shape(cmd.name, &argv), Ok(Some(_))) {
            return Err(lua_err(format!(
                "ERR {} command is not allowed with BLOCK option from scripts",
                String::from_utf8_lossy(&argv[0])
            )));
        }
        let writes = cmd.flags.contains(&"write");
        if writes && self.read_only {
            return Err(lua_err("ERR Write commands are not allowed from read-only scripts."));
        }
        if cmd.deny_oom() && self.ks.make_room().is_err() {
            self.touched.extend(self.ks.finish());
            return Ok(Reply::err(errors::OOM));
        }
        let mut ctx = Ctx { name: cmd.name, ks: self.ks, db: self.db, max_bulk: self.max_bulk };
        let reply = commands::run(cmd, &mut ctx, &argv);
        let touched = self.ks.finish();
        if !touched.is_empty() {
            self.status.wrote.store(true, Ordering::Release);
        }
        self.touched.extend(touched);
        Ok(reply)
    }
}

/// The innermost message of a Lua error (callback errors wrap the cause).
fn clean(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => clean(cause),
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => m.clone(),
        other => other.to_string(),
    }
}

/// Redis reply -> Lua value, as Redis converts them for scripts (RESP2 rules).
fn to_lua(lua: &Lua, reply: &Reply) -> mlua::Result<Value> {
    Ok(match reply {
        Reply::Status(s) => {
            let t = lua.create_table()?;
            t.set("ok", s.as_ref())?;
            Value::Table(t)
        }
        Reply::Error(e) => {
            let t = lua.create_table()?;
            t.set("err", e.as_str())?;
            Value::Table(t)
        }
        Reply::Int(n) => Value::Integer(*n),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Verbatim(s) => Value::String(lua.create_string(s)?),
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Double(d) => Value::String(lua.create_string(commands::fmt_float(*d))?),
        Reply::Bool(b) => {
            if *b {
                Value::Integer(1)
            } else {
                Value::Boolean(false)
            }
        }
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) | Reply::Many(items) => {
            let t = lua.create_table()?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            Value::Table(t)
        }
        // Scripts speak RESP2: pairs are flat there.
        Reply::Map(pairs) | Reply::Pairs(pairs) => {
            let t = lua.create_table()?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                t.raw_set(2 * i + 1, to_lua(lua, k)?)?;
                t.raw_set(2 * i + 2, to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
        Reply::Keyed(pairs) => {
            let t = lua.create_table()?;
            for (i, (k, v)) in pairs.iter().enumerate() {
                let pair = lua.create_table()?;
                pair.raw_set(1, to_lua(lua, k)?)?;
                pair.raw_set(2, to_lua(lua, v)?)?;
                t.raw_set(i + 1, pair)?;
            }
            Value::Table(t)
        }
    })
}

/// Lua value -> Redis reply, as Redis converts a script's result.
fn from_lua(value: &Value) -> Reply {
    match value {
        Value::Nil | Value::Boolean(false) => Reply::Nil,
        Value::Boolean(true) => Reply::Int(1),
        Value::Integer(n) => Reply::Int(*n),
        Value::Number(n) => Reply::Int(*n as i64),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return Reply::Error(e.to_string_lossy().to_string());
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                return Reply::Status(s.to_string_lossy().to_string().into());
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i) {
                    Ok(Value::Nil) | Err(_) => break,
                    Ok(v) => items.push(from_lua(&v)),
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    }
}

fn install_libraries(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    // No file or OS access from scripts.
    for name in ["dofile", "loadfile", "load", "loadstring", "module", "require"] {
        g.set(name, Value::Nil)?;
    }
    let redis = lua.create_table()?;
    redis.set(
        "error_reply",
        lua.create_function(|lua, msg: String| {
            let t = lua.create_table()?;
            t.set("err", msg)?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "status_reply",
        lua.create_function(|lua, msg: String| {
            let t = lua.create_table()?;
            t.set("ok", msg)?;
            Ok(t)
        })?,
    )?;
    redis.set("sha1hex", lua.create_function(|_, s: mlua::String| Ok(sha1_hex(&s.as_bytes())))?)?;
    redis.set(
        "log",
        lua.create_function(|_, (level, msg): (i64, String)| {
            tracing::info!(level, "script: {msg}");
            Ok(())
        })?,
    )?;
    for (i, name) in ["LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING"].iter().enumerate() {
        redis.set(*name, i as i64)?;
    }
    g.set("redis", redis)?;

    let cjson = lua.create_table()?;
    cjson.set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let json: serde_json::Value = mlua::LuaSerdeExt::from_value(lua, v)?;
            Ok(json.to_string())
        })?,
    )?;
    cjson.set(
        "decode",
        lua.create_function(|lua, s: String| {
            let json: serde_json::Value = serde_json::from_str(&s).map_err(|e| lua_err(e.to_string()))?;
            mlua::LuaSerdeExt::to_value(lua, &json)
        })?,
    )?;
    g.set("cjson", cjson)?;

    // LuaBitOp semantics: operands are 32-bit integers, results signed.
    let bit = lua.create_table()?;
    let tobit = |n: f64| (n as i64) as i32;
    bit.set("tobit", lua.create_function(move |_, n: f64| Ok(tobit(n)))?)?;
    bit.set("bnot", lua.create_function(move |_, n: f64| Ok(!tobit(n)))?)?;
    bit.set(
        "band",
        lua.create_function(move |_, ns: mlua::Variadic<f64>| {
            Ok(ns.iter().fold(-1i32, |a, n| a & tobit(*n)))
        })?,
    )?;
    bit.set(
        "bor",
        lua.create_function(move |_, ns: mlua::Variadic<f64>| {
            Ok(ns.iter().fold(0i32, |a, n| a | tobit(*n)))
        })?,
    )?;
    bit.set(
        "bxor",
        lua.create_function(move |_, ns: mlua::Variadic<f64>| {
            Ok(ns.iter().fold(0i32, |a, n| a ^ tobit(*n)))
        })?,
    )?;
    bit.set(
        "lshift",
        lua.create_function(move |_, (n, s): (f64, f64)| Ok(tobit(n).wrapping_shl(tobit(s) as u32 & 31)))?,
    )?;
    bit.set(
        "rshift",
        lua.create_function(move |_, (n, s): (f64, f64)| {
            Ok(((tobit(n) as u32) >> (tobit(s) as u32 & 31)) as i32)
        })?,
    )?;
    bit.set(
        "arshift",
        lua.create_function(move |_, (n, s): (f64, f64)| Ok(tobit(n) >> (tobit(s) as u32 & 31)))?,
    )?;
    bit.set(
        "tohex",
        lua.create_function(move |_, (n, digits): (f64, Option<i64>)| {
            let d = digits.unwrap_or(8);
            let v = tobit(n) as u32;
            let width = d.unsigned_abs().min(8) as usize;
            let text = format!("{v:08x}");
            let text = &text[8 - width..];
            Ok(if d < 0 { text.to_uppercase() } else { text.to_string() })
        })?,
    )?;
    g.set("bit", bit)?;
    install_struct(lua)?;
    crate::cmsgpack::install(lua)?;
    // As in Redis, scripts may not create globals (a typo would otherwise leak state into
    // every later script); KEYS and ARGV are set with rawset.
    lua.load(
        r#"setmetatable(_G, {
            __newindex = function(_, name) error("Script attempted to create global variable '" .. tostring(name) .. "'", 2) end,
            __index = function(_, name) error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2) end,
        })"#,
    )
    .exec()?;
    Ok(())
}

/// One item of a `struct` format: a kind letter and its size in bytes.
#[derive(Clone, Copy)]
enum Item {
    Int {
        size: usize,
        signed: bool,
    },
    Float,
    Double,
    /// Zero-terminated string.
    ZString,
    /// Fixed-length string.
    Chars(usize),
    Pad,
}

/// Parses a `struct` format (Roberto Ierusalimschy's library that Redis bundles): byte
/// order `<` `>` `=` `!`, then b B h H i[n] I[n] l L T f d s cN x.
fn struct_format(fmt: &[u8]) -> mlua::Result<(bool, Vec<Item>)> {
    let mut little = cfg!(target_endian = "little");
    let mut items = Vec::new();
    let mut i = 0;
    let number = |i: &mut usize| {
        let start = *i;
        while *i < fmt.len() && fmt[*i].is_ascii_digit() {
            *i += 1;
        }
        std::str::from_utf8(&fmt[start..*i]).ok().and_then(|d| d.parse::<usize>().ok())
    };
    while i < fmt.len() {
        let c = fmt[i];
        i += 1;
        let int = |size, signed| Item::Int { size, signed };
        items.push(match c {
            b'<' => {
                little = true;
                continue;
            }
            b'>' => {
                little = false;
                continue;
            }
            b'=' | b'!' | b' ' => {
                number(&mut i);
                continue;
            }
            b'b' => int(1, true),
            b'B' => int(1, false),
            b'h' => int(2, true),
            b'H' => int(2, false),
            b'l' => int(8, true),
            b'L' | b'T' => int(8, false),
            b'i' | b'I' => {
                let size = number(&mut i).unwrap_or(4);
                if !(1..=8).contains(&size) {
                    return Err(lua_err(format!("integral size {size} is larger than limit of 8")));
                }
                int(size, c == b'i')
            }
            b'f' => Item::Float,
            b'd' => Item::Double,
            b's' => Item::ZString,
            b'c' => Item::Chars(number(&mut i).unwrap_or(1)),
            b'x' => Item::Pad,
            other => return Err(lua_err(format!("invalid format option '{}'", other as char))),
        });
    }
    Ok((little, items))
}

fn install_struct(lua: &Lua) -> mlua::Result<()> {
    let st = lua.create_table()?;
    st.set(
        "pack",
        lua.create_function(|lua, (fmt, values): (mlua::String, mlua::Variadic<Value>)| {
            let (little, items) = struct_format(&fmt.as_bytes())?;
            let mut out = Vec::new();
            let mut values = values.into_iter();
            let mut next = || values.next().ok_or_else(|| lua_err("bad argument to 'pack' (no value)"));
            for item in items {
                match item {
                    Item::Int { size, .. } => {
                        let n = match next()? {
                            Value::Integer(n) => n,
                            Value::Number(n) => n as i64,
                            _ => return Err(lua_err("bad argument to 'pack' (number expected)")),
                        };
                        let bytes = n.to_le_bytes();
                        if little {
                            out.extend_from_slice(&bytes[..size]);
                        } else {
                            out.extend(bytes[..size].iter().rev());
                        }
                    }
                    Item::Float | Item::Double => {
                        let n = match next()? {
                            Value::Integer(n) => n as f64,
                            Value::Number(n) => n,
                            _ => return Err(lua_err("bad argument to 'pack' (number expected)")),
                        };
                        let bytes = if matches!(item, Item::Float) {
                            if little {
                                (n as f32).to_le_bytes().to_vec()
                            } else {
                                (n as f32).to_be_bytes().to_vec()
                            }
                        } else if little {
                            n.to_le_bytes().to_vec()
                        } else {
                            n.to_be_bytes().to_vec()
                        };
                        out.extend(bytes);
                    }
                    Item::ZString | Item::Chars(_) => {
                        let Value::String(s) = next()? else {
                            return Err(lua_err("bad argument to 'pack' (string expected)"));
                        };
                        let b = s.as_bytes();
                        match item {
                            Item::Chars(n) => {
                                let mut field = b[..b.len().min(n)].to_vec();
                                field.resize(n, 0);
                                out.extend(field);
                            }
                            _ => {
                                out.extend_from_slice(&b);
                                out.push(0);
                            }
                        }
                    }
                    Item::Pad => out.push(0),
                }
            }
            lua.create_string(out)
        })?,
    )?;
    st.set(
        "unpack",
        lua.create_function(|lua, (fmt, data, pos): (mlua::String, mlua::String, Option<usize>)| {
            let (little, items) = struct_format(&fmt.as_bytes())?;
            let data = data.as_bytes();
            let mut at = pos.unwrap_or(1).saturating_sub(1);
            let mut out = Vec::new();
            let short = || lua_err("bad argument to 'unpack' (data string too short)");
            for item in items {
                match item {
                    Item::Int { size, signed } => {
                        let field = data.get(at..at + size).ok_or_else(short)?;
                        let mut bytes = [0u8; 8];
                        if little {
                            bytes[..size].copy_from_slice(field);
                        } else {
                            for (j, b) in field.iter().rev().enumerate() {
                                bytes[j] = *b;
                            }
                        }
                        let mut n = i64::from_le_bytes(bytes);
                        if signed && size < 8 && n & (1 << (size * 8 - 1)) != 0 {
                            n |= -1i64 << (size * 8);
                        }
                        out.push(Value::Number(n as f64));
                        at += size;
                    }
                    Item::Float => {
                        let f: [u8; 4] = data.get(at..at + 4).ok_or_else(short)?.try_into().expect("4 bytes");
                        let v = if little { f32::from_le_bytes(f) } else { f32::from_be_bytes(f) };
                        out.push(Value::Number(v as f64));
                        at += 4;
                    }
                    Item::Double => {
                        let f: [u8; 8] = data.get(at..at + 8).ok_or_else(short)?.try_into().expect("8 bytes");
                        let v = if little { f64::from_le_bytes(f) } else { f64::from_be_bytes(f) };
                        out.push(Value::Number(v));
                        at += 8;
                    }
                    Item::ZString => {
                        let rest = data.get(at..).ok_or_else(short)?;
                        let end = rest.iter().position(|b| *b == 0).ok_or_else(short)?;
                        out.push(Value::String(lua.create_string(&rest[..end])?));
                        at += end + 1;
                    }
                    Item::Chars(n) => {
                        let field = data.get(at..at + n).ok_or_else(short)?;
                        out.push(Value::String(lua.create_string(field)?));
                        at += n;
                    }
                    Item::Pad => at += 1,
                }
            }
            out.push(Value::Number((at + 1) as f64));
            Ok(MultiValue::from_vec(out))
        })?,
    )?;
    st.set(
        "size",
        lua.create_function(|_, fmt: mlua::String| {
            let (_, items) = struct_format(&fmt.as_bytes())?;
            let mut size = 0;
            for item in items {
                size += match item {
                    Item::Int { size, .. } => size,
                    Item::Float => 4,
                    Item::Double => 8,
                    Item::Chars(n) => n,
                    Item::Pad => 1,
                    Item::ZString => return Err(lua_err("options 's' has no fixed size")),
                };
            }
            Ok(size)
        })?,
    )?;
    lua.globals().set("struct", st)
}
