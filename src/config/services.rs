//! The config keys of long-running services: `depends_on`, `ready`, `alive`,
//! `backoff_max`, `backoff_reset` per job, and `exit_with` / the backoff defaults in
//! `[settings]`.
//!
//! Kept apart from `parse.rs` so the shape of the document stays there and what these
//! keys mean lives here: serde reads them with their spans (`Spanned`), and every check
//! here returns the span, key and message that `parse.rs` turns into a located
//! [`super::ConfigError`]. Names in `depends_on` are resolved (and cycles found) once all
//! jobs are known, in [`super::graph`].

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use toml::Spanned;
use toml::Value;

/// A problem with one of these keys: where, which key (relative to the job, or from the
/// root for `settings.*`), and what is wrong.
#[derive(Debug)]
pub(super) struct KeyError {
    pub span: Range<usize>,
    pub key: String,
    pub message: String,
}

fn key_error(span: Range<usize>, key: &str, message: impl Into<String>) -> KeyError {
    KeyError {
        span,
        key: key.to_string(),
        message: message.into(),
    }
}

/// What must hold of a dependency before its dependent starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Its run has started (a process was spawned).
    Started,
    /// It is running and its `ready` probe passed (as soon as it started, without one).
    /// A one-shot that became ready and then exited 0 still counts.
    Ready,
    /// Its run ended with exit status 0 (and it will not be restarted).
    Succeeded,
    /// It ended for good, whatever its result.
    Finished,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Ready => "ready",
            Condition::Succeeded => "succeeded",
            Condition::Finished => "finished",
        }
    }

    pub fn parse(text: &str) -> Option<Condition> {
        match text.trim() {
            "started" => Some(Condition::Started),
            "ready" => Some(Condition::Ready),
            "succeeded" => Some(Condition::Succeeded),
            "finished" => Some(Condition::Finished),
            _ => None,
        }
    }
}

/// One resolved dependency of a job (a job with replicas is one dependency per replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// Index of the dependency in [`super::Config::jobs`].
    pub job: usize,
    /// Its (expanded) name.
    pub name: String,
    pub condition: Condition,
}

/// A readiness or liveness check.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    pub check: Check,
    /// Time between two checks (a log probe: the window a matching line must appear in,
    /// for `alive`).
    pub interval: Duration,
    /// How long one check may take (a log readiness probe: how long to wait for the line;
    /// None: as long as the job runs).
    pub timeout: Option<Duration>,
    /// Wait this long before the first check (for `alive`: after the job is ready).
    pub initial_delay: Duration,
    /// `ready`: failed checks allowed before the job counts as never ready and is stopped
    /// (None: keep checking while it runs).
    pub retries: Option<u32>,
    /// `alive`: failed checks in a row that make the job not alive.
    pub failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// A line of stdout or stderr (escape sequences removed) matches this regex.
    Log(String),
    /// A TCP connection to `host:port` is accepted.
    Tcp(String),
    /// An HTTP/1.1 GET answers with `status` (None: any 2xx or 3xx).
    Http {
        target: HttpTarget,
        status: Option<u16>,
    },
    /// This program exits 0 (started like a job stage, with the job's env and cwd).
    Exec(Vec<String>),
}

/// A plain-HTTP URL, split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// As written.
    pub url: String,
    /// `host:port` to connect to.
    pub address: String,
    /// The `Host` header.
    pub host_header: String,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Check {
    /// Short text for listings and notices: `tcp 127.0.0.1:5432`, `log /ready/`.
    pub fn describe(&self) -> String {
        match self {
            Check::Log(pattern) => format!("log /{pattern}/"),
            Check::Tcp(address) => format!("tcp {address}"),
            Check::Http { target, status } => match status {
                Some(status) => format!("http {} (status {status})", target.url),
                None => format!("http {}", target.url),
            },
            Check::Exec(argv) => {
                format!("exec {}", super::CommandSpec::Argv(argv.clone()).display())
            }
        }
    }
}

impl ProbeSpec {
    /// `tcp 127.0.0.1:5432 every 250ms (timeout 1s)`, as `forkyard check` shows it.
    pub fn describe(&self, alive: bool) -> String {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let mut out = self.check.describe();
        match (&self.check, alive) {
            (Check::Log(_), false) => {
                if let Some(timeout) = self.timeout {
                    out.push_str(&format!(" within {}", d(timeout)));
                }
            }
            (Check::Log(_), true) => {
                out.push_str(&format!(" at least every {}", d(self.interval)));
            }
            _ => {
                out.push_str(&format!(" every {}", d(self.interval)));
                if let Some(timeout) = self.timeout {
                    out.push_str(&format!(", timeout {}", d(timeout)));
                }
            }
        }
        if !self.initial_delay.is_zero() {
            out.push_str(&format!(", after {}", d(self.initial_delay)));
        }
        if alive {
            out.push_str(&format!(", {} failures in a row", self.failures));
        } else if let Some(retries) = self.retries {
            out.push_str(&format!(", {retries} retries"));
        }
        out
    }
}

/// `depends_on` as written: a list of names (each meaning `ready`), or a table of
/// name = condition. Names keep their spans for the errors of [`super::graph`].
#[derive(Debug)]
pub(super) struct RawDependsOn(pub Vec<(Spanned<String>, Option<Spanned<String>>)>);

impl<'de> Deserialize<'de> for RawDependsOn {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawDependsOn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a list of job names like ["db"], or a table like { db = "ready" }"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawDependsOn, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = seq.next_element::<Spanned<String>>()? {
                    out.push((name, None));
                }
                Ok(RawDependsOn(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDependsOn, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<Spanned<String>>()? {
                    let condition = map.next_value::<Spanned<String>>()?;
                    out.push((name, Some(condition)));
                }
                Ok(RawDependsOn(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `ready = { ... }` / `alive = { ... }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    log: Option<Spanned<String>>,
    tcp: Option<Spanned<String>>,
    http: Option<Spanned<String>>,
    exec: Option<Spanned<Vec<Spanned<String>>>>,
    status: Option<Spanned<i64>>,
    interval: Option<Spanned<Value>>,
    timeout: Option<Spanned<Value>>,
    initial_delay: Option<Spanned<Value>>,
    retries: Option<Spanned<i64>>,
    failures: Option<Spanned<i64>>,
}

/// A dependency as written, before names are resolved.
#[derive(Debug, Clone)]
pub(super) struct WrittenDependency {
    pub name: String,
    pub span: Range<usize>,
    pub condition: Condition,
}

/// `depends_on`: names and conditions, checked for shape (names are resolved later).
pub(super) fn depends_on(raw: &RawDependsOn) -> Result<Vec<WrittenDependency>, KeyError> {
    let mut out: Vec<WrittenDependency> = Vec::new();
    for (name, condition) in &raw.0 {
        let key = match condition {
            None => "depends_on".to_string(),
            Some(_) => format!("depends_on.{}", name.get_ref()),
        };
        let condition = match condition {
            None => Condition::Ready,
            Some(text) => Condition::parse(text.get_ref()).ok_or_else(|| {
                key_error(
                    text.span(),
                    &key,
                    format!(
                        r#"invalid condition {:?} (expected "started", "ready", "succeeded" or "finished")"#,
                        text.get_ref()
                    ),
                )
            })?,
        };
        if name.get_ref().is_empty() {
            return Err(key_error(name.span(), &key, "job name must not be empty"));
        }
        if out.iter().any(|d| d.name == *name.get_ref()) {
            return Err(key_error(
                name.span(),
                &key,
                format!("{:?} is listed twice", name.get_ref()),
            ));
        }
        out.push(WrittenDependency {
            name: name.get_ref().clone(),
            span: name.span(),
            condition,
        });
    }
    Ok(out)
}

/// `ready` (alive = false) or `alive` (alive = true).
pub(super) fn probe(raw: &Spanned<RawProbe>, alive: bool) -> Result<ProbeSpec, KeyError> {
    let which = if alive { "alive" } else { "ready" };
    let key = |k: &str| format!("{which}.{k}");
    let span = raw.span();
    let raw = raw.get_ref();

    let mut kinds: Vec<(&str, Range<usize>)> = Vec::new();
    if let Some(v) = &raw.log {
        kinds.push(("log", v.span()));
    }
    if let Some(v) = &raw.tcp {
        kinds.push(("tcp", v.span()));
    }
    if let Some(v) = &raw.http {
        kinds.push(("http", v.span()));
    }
    if let Some(v) = &raw.exec {
        kinds.push(("exec", v.span()));
    }
    kinds.sort_by_key(|(_, span)| span.start);
    match kinds.as_slice() {
        [] => {
            return Err(key_error(
                span,
                which,
                r#"no check: set one of `log = "regex"`, `tcp = "host:port"`, `http = "http://host:port/path"` or `exec = ["prog", "arg"]`"#,
            ));
        }
        [_] => {}
        [(first, _), (second, second_span), ..] => {
            return Err(key_error(
                second_span.clone(),
                &key(second),
                format!("a probe has exactly one check, but `{first}` and `{second}` are both set"),
            ));
        }
    }

    let is_log = raw.log.is_some();
    let check = if let Some(v) = &raw.log {
        let pattern = v.get_ref();
        if pattern.is_empty() {
            return Err(key_error(
                v.span(),
                &key("log"),
                "the regex must not be empty",
            ));
        }
        regex::Regex::new(pattern).map_err(|err| {
            key_error(
                v.span(),
                &key("log"),
                format!("invalid regex {pattern:?}: {}", regex_error(&err)),
            )
        })?;
        Check::Log(pattern.clone())
    } else if let Some(v) = &raw.tcp {
        Check::Tcp(tcp_address(v.get_ref()).map_err(|m| key_error(v.span(), &key("tcp"), m))?)
    } else if let Some(v) = &raw.http {
        let target = http_target(v.get_ref()).map_err(|m| key_error(v.span(), &key("http"), m))?;
        let status = match &raw.status {
            Some(s) => {
                let n = *s.get_ref();
                if !(100..=599).contains(&n) {
                    return Err(key_error(
                        s.span(),
                        &key("status"),
                        format!("an HTTP status is 100 to 599, got {n}"),
                    ));
                }
                Some(n as u16)
            }
            None => None,
        };
        Check::Http { target, status }
    } else if let Some(v) = &raw.exec {
        let argv: Vec<String> = v.get_ref().iter().map(|a| a.get_ref().clone()).collect();
        match argv.first() {
            None => {
                return Err(key_error(
                    v.span(),
                    &key("exec"),
                    r#"must not be empty (e.g. exec = ["pg_isready"])"#,
                ));
            }
            Some(p) if p.is_empty() => {
                return Err(key_error(
                    v.span(),
                    &key("exec"),
                    "the program (first element) must not be empty",
                ));
            }
            Some(_) if argv.iter().any(|a| a.contains('\0')) => {
                return Err(key_error(
                    v.span(),
                    &key("exec"),
                    "arguments must not contain NUL",
                ));
            }
            Some(_) => {}
        }
        Check::Exec(argv)
    } else {
        return Err(key_error(span, which, "no check"));
    };

    if let (Some(s), false) = (&raw.status, matches!(check, Check::Http { .. })) {
        return Err(key_error(
            s.span(),
            &key("status"),
            "`status` belongs to an `http` check",
        ));
    }
    // Keys that mean nothing for this probe are refused rather than ignored.
    if alive {
        if let Some(v) = &raw.retries {
            return Err(key_error(
                v.span(),
                &key("retries"),
                "an `alive` probe counts `failures` (failed checks in a row), not `retries`",
            ));
        }
    } else if let Some(v) = &raw.failures {
        return Err(key_error(
            v.span(),
            &key("failures"),
            "a `ready` probe counts `retries` (failed checks before it gives up), not `failures`",
        ));
    }
    if is_log && !alive {
        let unused = [
            ("interval", raw.interval.as_ref().map(Spanned::span)),
            (
                "initial_delay",
                raw.initial_delay.as_ref().map(Spanned::span),
            ),
            ("retries", raw.retries.as_ref().map(Spanned::span)),
        ];
        if let Some((name, Some(span))) = unused.into_iter().find(|(_, s)| s.is_some()) {
            return Err(key_error(
                span,
                &key(name),
                "a `log` readiness probe waits for a matching line; only `timeout` (how long to wait for it) applies",
            ));
        }
    }
    if is_log
        && alive
        && let Some(v) = &raw.timeout
    {
        return Err(key_error(
            v.span(),
            &key("timeout"),
            "a `log` liveness probe wants a matching line every `interval`; `timeout` does not apply",
        ));
    }

    let duration_key = |v: &Option<Spanned<Value>>, name: &str, zero: bool| {
        v.as_ref()
            .map(|v| {
                super::parse::duration(v, zero).map_err(|m| key_error(v.span(), &key(name), m))
            })
            .transpose()
    };
    let default_interval = if alive {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(250)
    };
    let interval = duration_key(&raw.interval, "interval", false)?.unwrap_or(default_interval);
    let timeout = duration_key(&raw.timeout, "timeout", false)?
        .or((!is_log).then_some(Duration::from_secs(1)));
    let initial_delay =
        duration_key(&raw.initial_delay, "initial_delay", true)?.unwrap_or_default();
    let count = |v: &Option<Spanned<i64>>, name: &str| {
        v.as_ref()
            .map(|v| {
                super::parse::int_in(v, 1, i64::from(u32::MAX))
                    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
                    .map_err(|m| key_error(v.span(), &key(name), m))
            })
            .transpose()
    };
    let retries = count(&raw.retries, "retries")?;
    let failures = count(&raw.failures, "failures")?.unwrap_or(3);
    Ok(ProbeSpec {
        check,
        interval,
        timeout,
        initial_delay,
        retries,
        failures,
    })
}

/// The last line of a regex error (the others draw the pattern with a caret).
fn regex_error(err: &regex::Error) -> String {
    let text = err.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error:").trim().to_string()
}

/// `host:port` (an IPv6 address in brackets: `[::1]:8080`).
fn tcp_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bad = || format!(r#"expected "host:port" (e.g. "127.0.0.1:5432"), got {text:?}"#);
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains(char::is_whitespace) || text.contains('/') {
        return Err(bad());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "an IPv6 address goes in brackets, e.g. \"[::1]:8080\", got {text:?}"
        ));
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid port {port:?} in {text:?} (1 to 65535)")),
        Ok(_) => Ok(text.to_string()),
    }
}

/// An `http://` URL: host, optional port (80), path (`/`).
fn http_target(url: &str) -> Result<HttpTarget, String> {
    let url = url.trim();
    let Some(rest) = url.strip_prefix("http://") else {
        if url.starts_with("https://") {
            return Err(format!(
                "https is not supported (the http probe speaks plain HTTP/1.1, without TLS): probe the service's plain-HTTP port, or use an exec probe, got {url:?}"
            ));
        }
        return Err(format!(
            r#"expected a URL like "http://127.0.0.1:8000/health", got {url:?}"#
        ));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(format!(
            "a URL with user info is not supported, got {url:?}"
        ));
    }
    if authority.is_empty() {
        return Err(format!("the URL has no host, got {url:?}"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            let port = match port.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(format!("invalid port {port:?} in {url:?} (1 to 65535)"));
                }
                Ok(port) => port,
            };
            (host, port)
        }
        _ => (authority, 80),
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("the URL has no valid host, got {url:?}"));
    }
    let path = tail.split('#').next().unwrap_or("");
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the URL's path must not contain spaces or control characters, got {url:?}"
        ));
    }
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    Ok(HttpTarget {
        url: url.to_string(),
        address: format!("{host}:{port}"),
        host_header: if port == 80 {
            host.to_string()
        } else {
            format!("{host}:{port}")
        },
        path,
    })
}

/// `backoff_max` / `backoff_reset` (job or settings).
pub(super) fn backoff(
    v: &Option<Spanned<Value>>,
    key: &str,
    default: Duration,
) -> Result<Duration, KeyError> {
    match v {
        Some(v) => super::parse::duration(v, false).map_err(|m| key_error(v.span(), key, m)),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_targets() {
        let t = http_target("http://127.0.0.1:8000/health?x=1#frag").expect("ok");
        assert_eq!(t.address, "127.0.0.1:8000");
        assert_eq!(t.host_header, "127.0.0.1:8000");
        assert_eq!(t.path, "/health?x=1");
        let t = http_target("http://example.org").expect("ok");
        assert_eq!(
            (t.address.as_str(), t.path.as_str()),
            ("example.org:80", "/")
        );
        assert_eq!(t.host_header, "example.org");
        let t = http_target("http://[::1]:9000").expect("ok");
        assert_eq!(t.address, "[::1]:9000");
        for bad in [
            "https://x",
            "ftp://x",
            "http://",
            "http://a:0/",
            "http://a:99999/",
            "http://u@a/",
            "http://a/b c",
        ] {
            assert!(http_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_addresses() {
        assert!(tcp_address("127.0.0.1:5432").is_ok());
        assert!(tcp_address("localhost:80").is_ok());
        assert!(tcp_address("[::1]:80").is_ok());
        for bad in ["5432", ":80", "a:0", "a:b", "::1:80", "a b:1", "http://a:1"] {
            assert!(tcp_address(bad).is_err(), "{bad}");
        }
    }
}
