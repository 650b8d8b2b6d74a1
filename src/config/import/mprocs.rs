//! `mprocs.yaml`: `procs:` with `shell` or `cmd`, `cwd`, `env`, `add_path`,
//! `autostart`, `autorestart`, `stop`; `scrollback` at the top. `$select: os` picks the
//! `linux` value (else `$else`); `<CONFIG_DIR>` in `cwd` is the config's folder. The
//! rest (key maps, the remote-control server, `send-keys`) has no forkyard equivalent
//! and is listed as warnings.

use toml::Value;

use super::yaml::{self, Node, Y};
use super::{Draft, DraftJob, Format, Pos, error_at, literal};
use crate::config::ConfigError;

/// Top-level keys that only shape mprocs' own UI.
const UI_KEYS: &[&str] = &[
    "hide_keymap_window",
    "mouse_scroll_speed",
    "proc_list_width",
    "proc_list_title",
    "keymap_procs",
    "keymap_term",
    "keymap_copy",
    "server",
];

pub fn draft(text: &str, origin: &str) -> Result<Draft, ConfigError> {
    let mut d = Draft::new(origin, Format::Mprocs);
    let Some(root) = yaml::parse(text, origin)? else {
        return Err(error_at(
            origin,
            Pos::new(1, 1),
            None,
            "empty file: expected `procs:`",
        ));
    };
    let Some(entries) = root.entries() else {
        return Err(error_at(
            origin,
            root.at,
            None,
            format!("expected a mapping with `procs:`, got {}", root.kind()),
        ));
    };
    let mut procs = None;
    for (key, value) in entries {
        match key.as_str().unwrap_or("") {
            "procs" => procs = Some(value),
            "scrollback" => match &select(value, origin)?.node {
                Node::Int(n) if *n >= 1 => d.setting("scrollback", *n, value.at),
                _ => d.warn(
                    None,
                    value.at,
                    "key `scrollback`: not mapped: expected a positive integer",
                ),
            },
            k if UI_KEYS.contains(&k) => d.warn(
                None,
                key.at,
                format!("key `{k}`: not mapped (mprocs' own UI; forkyard's keys are its own)"),
            ),
            k => d.warn(
                None,
                key.at,
                format!("key `{}`: not mapped (unknown to this importer)", shown(k)),
            ),
        }
    }
    let Some(procs) = procs else {
        return Err(error_at(
            origin,
            root.at,
            Some("procs"),
            "no `procs:` mapping: nothing to run",
        ));
    };
    let Some(procs) = select(procs, origin)?.entries().map(<[_]>::to_vec) else {
        return Err(error_at(
            origin,
            procs.at,
            Some("procs"),
            format!("expected a mapping of processes, got {}", procs.kind()),
        ));
    };
    for (key, spec) in &procs {
        let wanted = key.scalar_text().unwrap_or_default();
        let name = d.job_name(&wanted, key.at);
        d.jobs.push(DraftJob::new(name, key.at));
        let index = d.jobs.len() - 1;
        proc(&mut d, index, &wanted, spec, origin)?;
    }
    if d.jobs.is_empty() {
        return Err(error_at(
            origin,
            root.at,
            Some("procs"),
            "`procs:` is empty: nothing to run",
        ));
    }
    Ok(d)
}

fn proc(
    d: &mut Draft,
    index: usize,
    name: &str,
    spec: &Y,
    origin: &str,
) -> Result<(), ConfigError> {
    let spec = select(spec, origin)?;
    // `name: "command"` is mprocs' short form of `shell:`; `name: [argv]` of `cmd:`.
    match &spec.node {
        Node::Str(s) => {
            d.jobs[index].set("shell", s.as_str(), spec.at);
            return Ok(());
        }
        Node::Seq(_) => {
            let mut long = Y {
                node: Node::Map(Vec::new()),
                at: spec.at,
            };
            long.node = Node::Map(vec![(
                Y {
                    node: Node::Str("cmd".into()),
                    at: spec.at,
                },
                spec.clone(),
            )]);
            return proc(d, index, name, &long, origin);
        }
        _ => {}
    }
    let key_of = |k: &str| {
        if k.is_empty() {
            format!("procs.{}", shown(name))
        } else {
            format!("procs.{}.{k}", shown(name))
        }
    };
    let Some(entries) = spec.entries() else {
        return Err(error_at(
            origin,
            spec.at,
            Some(&key_of("")),
            format!(
                "expected a mapping (`shell:` or `cmd:`), got {}",
                spec.kind()
            ),
        ));
    };
    let mut env = toml::Table::new();
    let mut env_at = spec.at;
    let mut has_command = false;
    for (key, value) in entries {
        let k = key.as_str().unwrap_or("");
        let value = &select(value, origin)?;
        let job = &mut d.jobs[index];
        match k {
            "shell" => {
                let Some(s) = value.as_str() else {
                    return Err(error_at(origin, value.at, Some(&key_of(k)), format!("expected a string, got {}", value.kind())));
                };
                job.set("shell", s, value.at);
                has_command = true;
            }
            "cmd" => {
                let Node::Seq(items) = &value.node else {
                    return Err(error_at(origin, value.at, Some(&key_of(k)), format!("expected a list like [\"cargo\", \"run\"], got {}", value.kind())));
                };
                let mut argv = Vec::new();
                for item in items {
                    let Some(s) = item.scalar_text() else {
                        return Err(error_at(origin, item.at, Some(&key_of(k)), format!("expected a string, got {}", item.kind())));
                    };
                    argv.push(Value::from(literal(&s)));
                }
                job.set("cmd", argv, value.at);
                has_command = true;
            }
            "cwd" => {
                let Some(s) = value.as_str() else {
                    return Err(error_at(origin, value.at, Some(&key_of(k)), format!("expected a string, got {}", value.kind())));
                };
                // `<CONFIG_DIR>` is the config's folder, which is what forkyard resolves a
                // relative `cwd` against anyway.
                let cwd = match s.strip_prefix("<CONFIG_DIR>") {
                    Some(rest) => {
                        let rest = rest.trim_start_matches(['/', '\\']);
                        if rest.is_empty() { ".".to_string() } else { rest.to_string() }
                    }
                    None => s.to_string(),
                };
                job.set("cwd", literal(&cwd), value.at);
            }
            "env" => {
                env_at = value.at;
                let Some(vars) = value.entries() else {
                    return Err(error_at(origin, value.at, Some(&key_of(k)), format!("expected a mapping of variables, got {}", value.kind())));
                };
                for (var, v) in vars {
                    let var_name = var.scalar_text().unwrap_or_default();
                    let v = select(v, origin)?;
                    match v.scalar_text() {
                        Some(text) => {
                            env.insert(var_name, Value::from(literal(&text)));
                        }
                        None if v.node == Node::Null => d.warn(
                            Some(index),
                            v.at,
                            format!("key `{}`: not mapped: forkyard cannot unset an inherited variable", key_of(&format!("env.{}", shown(&var_name)))),
                        ),
                        None => {
                            return Err(error_at(origin, v.at, Some(&key_of(&format!("env.{var_name}"))), format!("expected a string, got {}", v.kind())));
                        }
                    }
                }
            }
            "add_path" => {
                let paths: Vec<String> = match &value.node {
                    Node::Str(s) => vec![s.clone()],
                    Node::Seq(items) => items.iter().filter_map(Y::scalar_text).collect(),
                    _ => {
                        return Err(error_at(origin, value.at, Some(&key_of(k)), format!("expected a path or a list of paths, got {}", value.kind())));
                    }
                };
                let mut path: Vec<String> = paths.iter().map(|p| literal(p)).collect();
                path.push("${PATH}".into());
                env.insert("PATH".into(), Value::from(path.join(":")));
            }
            "autostart" => match value.node {
                Node::Bool(b) => job.set("autostart", b, value.at),
                _ => return Err(error_at(origin, value.at, Some(&key_of(k)), format!("expected true or false, got {}", value.kind()))),
            },
            "autorestart" => match value.node {
                Node::Bool(b) => job.set_noted(
                    "restart",
                    if b { "always" } else { "no" },
                    value.at,
                    b.then(|| "mprocs: autorestart (forkyard also restarts a quick exit, with backoff)".into()),
                ),
                _ => return Err(error_at(origin, value.at, Some(&key_of(k)), format!("expected true or false, got {}", value.kind()))),
            },
            "stop" => match value.as_str() {
                Some(sig @ ("SIGINT" | "SIGTERM" | "SIGKILL")) => job.set("stop_signal", sig, value.at),
                Some("hard-kill") => job.set("stop_signal", "KILL", value.at),
                _ => d.warn(
                    Some(index),
                    value.at,
                    format!("key `{}`: not mapped (forkyard stops with a signal: SIGINT, SIGTERM or SIGKILL)", key_of(k)),
                ),
            },
            other => d.warn(
                Some(index),
                key.at,
                format!("key `{}`: not mapped (unknown to this importer)", key_of(&shown(other))),
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
            Some(&key_of("")),
            "no command: set `shell: \"...\"` or `cmd: [...]`",
        ));
    }
    Ok(())
}

/// `$select: os` resolved for this machine (Linux): the `linux` value, else `$else`.
fn select(value: &Y, origin: &str) -> Result<Y, ConfigError> {
    if value.get("$select").is_none() {
        return Ok(value.clone());
    }
    let os = std::env::consts::OS;
    value
        .get(os)
        .or_else(|| value.get("$else"))
        .cloned()
        .ok_or_else(|| {
            error_at(
                origin,
                value.at,
                Some("$select"),
                format!("no `{os}:` or `$else:` value"),
            )
        })
}

fn shown(text: &str) -> String {
    crate::stdio::visible_inline(text).into_owned()
}
