//! `process-compose.yaml`: `processes:` with `command`, `working_dir`, `environment`,
//! `availability` (`restart`, `max_restarts`), `shutdown` (`signal`, `timeout_seconds`),
//! `disabled`, `replicas`; `environment` at the top goes to every process.
//!
//! `depends_on`, `readiness_probe`, `liveness_probe` and `ready_log_line` are recorded
//! ([`super::DraftJob::depends_on`]) and warned as "not mapped yet": forkyard's job
//! dependencies and probes come with the services work. Everything else is warned as
//! not mapped, with its line.

use toml::Value;

use super::yaml::{self, Node, Y};
use super::{Draft, DraftJob, Format, Pos, error_at};
use crate::config::ConfigError;

/// Top-level keys about process-compose's own logging and UI.
const OWN_KEYS: &[&str] = &[
    "log_level",
    "log_location",
    "log_length",
    "log_no_color",
    "log_timestamps",
    "log_truncate",
    "log_configuration",
    "is_strict",
    "ordered_shutdown",
    "disable_env_expansion",
    "is_tui_disabled",
];

/// Keys that need forkyard's dependencies and probes (the services work).
const SERVICE_KEYS: &[&str] = &[
    "depends_on",
    "readiness_probe",
    "liveness_probe",
    "ready_log_line",
];

pub fn draft(text: &str, origin: &str) -> Result<Draft, ConfigError> {
    let mut d = Draft::new(origin, Format::ProcessCompose);
    d.notes.push(
        "process-compose runs `command` with bash -c; forkyard runs `shell` with /bin/sh -c".into(),
    );
    let Some(root) = yaml::parse(text, origin)? else {
        return Err(error_at(
            origin,
            Pos::new(1, 1),
            None,
            "empty file: expected `processes:`",
        ));
    };
    let Some(entries) = root.entries() else {
        return Err(error_at(
            origin,
            root.at,
            None,
            format!("expected a mapping with `processes:`, got {}", root.kind()),
        ));
    };
    let mut processes = None;
    let mut global_env = toml::Table::new();
    for (key, value) in entries {
        match key.as_str().unwrap_or("") {
            "processes" => processes = Some(value),
            // The file format's version: nothing to map.
            "version" => {}
            "environment" => global_env = environment(value, origin, "environment")?,
            k if OWN_KEYS.contains(&k) => d.warn(
                None,
                key.at,
                format!("key `{k}`: not mapped (process-compose's own logging and UI)"),
            ),
            k => d.warn(
                None,
                key.at,
                format!("key `{}`: not mapped (unknown to this importer)", shown(k)),
            ),
        }
    }
    let Some(processes) = processes else {
        return Err(error_at(
            origin,
            root.at,
            Some("processes"),
            "no `processes:` mapping: nothing to run",
        ));
    };
    let Some(procs) = processes.entries() else {
        return Err(error_at(
            origin,
            processes.at,
            Some("processes"),
            format!("expected a mapping of processes, got {}", processes.kind()),
        ));
    };
    for (key, spec) in procs {
        let wanted = key.scalar_text().unwrap_or_default();
        let name = d.job_name(&wanted, key.at);
        d.jobs.push(DraftJob::new(name, key.at));
        let index = d.jobs.len() - 1;
        process(&mut d, index, &wanted, spec, &global_env, origin)?;
    }
    if d.jobs.is_empty() {
        return Err(error_at(
            origin,
            processes.at,
            Some("processes"),
            "`processes:` is empty: nothing to run",
        ));
    }
    Ok(d)
}

fn process(
    d: &mut Draft,
    index: usize,
    name: &str,
    spec: &Y,
    global_env: &toml::Table,
    origin: &str,
) -> Result<(), ConfigError> {
    let prefix = format!("processes.{}", shown(name));
    let key_of = |k: &str| format!("{prefix}.{k}");
    let Some(entries) = spec.entries() else {
        return Err(error_at(
            origin,
            spec.at,
            Some(&prefix),
            format!("expected a mapping with `command:`, got {}", spec.kind()),
        ));
    };
    let mut env = global_env.clone();
    let mut env_at = spec.at;
    let mut has_command = false;
    for (key, value) in entries {
        let k = key.as_str().unwrap_or("");
        match k {
            "command" => {
                let s = string(value, origin, &key_of(k))?;
                d.jobs[index].set_noted("shell", s, value.at, None);
                has_command = true;
            }
            "working_dir" => {
                let s = string(value, origin, &key_of(k))?;
                d.jobs[index].set("cwd", s, value.at);
            }
            "environment" => {
                env_at = value.at;
                env.extend(environment(value, origin, &key_of(k))?);
            }
            "disabled" => match value.node {
                Node::Bool(b) => d.jobs[index].set_noted(
                    "autostart",
                    !b,
                    value.at,
                    Some("process-compose: disabled".into()),
                ),
                _ => {
                    return Err(error_at(
                        origin,
                        value.at,
                        Some(&key_of(k)),
                        format!("expected true or false, got {}", value.kind()),
                    ));
                }
            },
            "replicas" => match value.node {
                Node::Int(n) if n >= 1 => d.jobs[index].set("replicas", n, value.at),
                _ => {
                    return Err(error_at(
                        origin,
                        value.at,
                        Some(&key_of(k)),
                        format!("expected a positive integer, got {}", value.kind()),
                    ));
                }
            },
            "description" => {
                if let Some(text) = value.scalar_text() {
                    d.jobs[index].notes.insert(0, text);
                }
            }
            "availability" => availability(d, index, value, origin, &key_of(k))?,
            "shutdown" => shutdown(d, index, value, origin, &key_of(k))?,
            "depends_on" => {
                for (dep, condition) in value.entries().unwrap_or_default() {
                    let dep_name = dep.scalar_text().unwrap_or_default();
                    let condition = condition
                        .get("condition")
                        .and_then(Y::scalar_text)
                        .unwrap_or_else(|| "process_started".into());
                    d.jobs[index].depends_on.push((dep_name, condition));
                }
                let list: Vec<String> = d.jobs[index]
                    .depends_on
                    .iter()
                    .map(|(dep, condition)| format!("{} ({})", shown(dep), shown(condition)))
                    .collect();
                d.warn(
                    Some(index),
                    key.at,
                    format!(
                        "key `{}`: not mapped yet: forkyard has no dependencies between jobs yet, every job starts at once (waits for: {})",
                        key_of(k),
                        list.join(", ")
                    ),
                );
            }
            k if SERVICE_KEYS.contains(&k) => d.warn(
                Some(index),
                key.at,
                format!(
                    "key `{}`: not mapped yet: forkyard has no readiness or liveness probes yet",
                    key_of(k)
                ),
            ),
            other => d.warn(
                Some(index),
                key.at,
                format!(
                    "key `{}`: not mapped (no forkyard equivalent)",
                    key_of(&shown(other))
                ),
            ),
        }
    }
    if !env.is_empty() {
        d.jobs[index].set("env", env, env_at);
    }
    if !has_command {
        return Err(error_at(
            origin,
            spec.at,
            Some(&prefix),
            "no `command:`: nothing to run",
        ));
    }
    Ok(())
}

fn availability(
    d: &mut Draft,
    index: usize,
    value: &Y,
    origin: &str,
    prefix: &str,
) -> Result<(), ConfigError> {
    let Some(entries) = value.entries() else {
        return Err(error_at(
            origin,
            value.at,
            Some(prefix),
            format!("expected a mapping, got {}", value.kind()),
        ));
    };
    for (key, v) in entries {
        let k = key.as_str().unwrap_or("");
        let key_name = format!("{prefix}.{k}");
        match k {
            "restart" => match v.as_str() {
                Some("no") => d.jobs[index].set("restart", "no", v.at),
                Some("always") => d.jobs[index].set("restart", "always", v.at),
                Some("on_failure") => d.jobs[index].set("restart", "on-failure", v.at),
                Some("exit_on_failure") => {
                    d.jobs[index].set("restart", "no", v.at);
                    d.warn(Some(index), v.at, format!("key `{key_name}`: exit_on_failure is not a per-job setting in forkyard: run with --kill-others-on-fail"));
                }
                _ => {
                    return Err(error_at(
                        origin,
                        v.at,
                        Some(&key_name),
                        "expected no, always, on_failure or exit_on_failure",
                    ));
                }
            },
            "max_restarts" => match v.node {
                // process-compose: 0 means no limit.
                Node::Int(0) => d.jobs[index].set_noted(
                    "max_restarts",
                    i64::from(u32::MAX),
                    v.at,
                    Some("process-compose: 0 = no limit".into()),
                ),
                Node::Int(n) if n > 0 => {
                    d.jobs[index].set("max_restarts", n.min(i64::from(u32::MAX)), v.at)
                }
                _ => {
                    return Err(error_at(
                        origin,
                        v.at,
                        Some(&key_name),
                        format!("expected a non-negative integer, got {}", v.kind()),
                    ));
                }
            },
            _ => d.warn(
                Some(index),
                key.at,
                format!(
                    "key `{}`: not mapped (forkyard's restart backoff doubles from 100 ms to 10 s)",
                    shown(&key_name)
                ),
            ),
        }
    }
    Ok(())
}

fn shutdown(
    d: &mut Draft,
    index: usize,
    value: &Y,
    origin: &str,
    prefix: &str,
) -> Result<(), ConfigError> {
    let Some(entries) = value.entries() else {
        return Err(error_at(
            origin,
            value.at,
            Some(prefix),
            format!("expected a mapping, got {}", value.kind()),
        ));
    };
    for (key, v) in entries {
        let k = key.as_str().unwrap_or("");
        let key_name = format!("{prefix}.{k}");
        match (k, &v.node) {
            ("signal", Node::Int(n)) => d.jobs[index].set("stop_signal", *n, v.at),
            ("timeout_seconds", Node::Int(n)) if *n >= 0 => d.jobs[index].set("grace", format!("{n}s"), v.at),
            ("signal" | "timeout_seconds", _) => {
                return Err(error_at(origin, v.at, Some(&key_name), format!("expected an integer, got {}", v.kind())));
            }
            _ => d.warn(Some(index), key.at, format!("key `{}`: not mapped (forkyard stops a job with its stop signal, then SIGKILL after grace)", shown(&key_name))),
        }
    }
    Ok(())
}

/// `environment:` as a list of `KEY=value` strings (process-compose's form) or a mapping.
fn environment(value: &Y, origin: &str, key: &str) -> Result<toml::Table, ConfigError> {
    let mut env = toml::Table::new();
    match &value.node {
        Node::Seq(items) => {
            for item in items {
                let Some((k, v)) = item.as_str().and_then(|s| s.split_once('=')) else {
                    return Err(error_at(origin, item.at, Some(key), "expected `KEY=value`"));
                };
                env.insert(k.to_string(), Value::from(v.to_string()));
            }
        }
        Node::Map(entries) => {
            for (k, v) in entries {
                let (Some(k), Some(v)) = (k.scalar_text(), v.scalar_text()) else {
                    return Err(error_at(origin, v.at, Some(key), "expected `KEY: value`"));
                };
                env.insert(k, Value::from(v));
            }
        }
        Node::Null => {}
        _ => {
            return Err(error_at(
                origin,
                value.at,
                Some(key),
                format!("expected a list of `KEY=value`, got {}", value.kind()),
            ));
        }
    }
    Ok(env)
}

fn string(value: &Y, origin: &str, key: &str) -> Result<String, ConfigError> {
    value.as_str().map(str::to_string).ok_or_else(|| {
        error_at(
            origin,
            value.at,
            Some(key),
            format!("expected a string, got {}", value.kind()),
        )
    })
}

fn shown(text: &str) -> String {
    crate::stdio::visible_inline(text).into_owned()
}
