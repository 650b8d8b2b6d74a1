//! The dependency graph of a config: `depends_on` names resolved to jobs, unknown names,
//! self-dependencies and cycles refused (with the cycle spelled out, `a → b → c → a`),
//! and the start order by levels that `forkyard check` prints.
//!
//! Checked on the jobs as written: every replica of a job has the same dependencies, so
//! a cycle between expanded jobs is a cycle between written ones. A name in `depends_on`
//! is a job's name as written (with replicas: every replica) or one expanded replica's
//! name (`web.2`).

use std::collections::HashMap;
use std::ops::Range;

use super::services::WrittenDependency;
use super::{Config, Dependency, JobSpec};

/// One `[[job]]` entry as the graph needs it.
pub(super) struct WrittenJob {
    pub name: String,
    /// Its expanded jobs: `jobs[first..first + count]`.
    pub first: usize,
    pub count: usize,
    pub depends_on: Vec<WrittenDependency>,
}

/// A graph problem, located at a `depends_on` entry of `job` (index among the written
/// jobs).
#[derive(Debug)]
pub(super) struct GraphError {
    pub job: usize,
    pub span: Range<usize>,
    pub key: String,
    pub message: String,
}

/// Resolves every job's `depends_on` into [`JobSpec::depends_on`], or says what is wrong.
pub(super) fn resolve(written: &[WrittenJob], jobs: &mut [JobSpec]) -> Result<(), GraphError> {
    // Name -> written job, for groups (replicas) and single expanded names.
    let mut by_written: HashMap<&str, usize> = HashMap::new();
    for (index, job) in written.iter().enumerate() {
        by_written.insert(job.name.as_str(), index);
    }
    let mut by_expanded: HashMap<String, (usize, usize)> = HashMap::new();
    for (index, job) in written.iter().enumerate() {
        for k in job.first..job.first + job.count {
            if let Some(spec) = jobs.get(k) {
                by_expanded.insert(spec.name.clone(), (index, k));
            }
        }
    }

    // Written-level edges (for cycles) and expanded dependencies (for the jobs).
    let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); written.len()]; // (target, dep index)
    let mut resolved: Vec<Vec<Dependency>> = vec![Vec::new(); written.len()];
    for (index, job) in written.iter().enumerate() {
        for (d, dep) in job.depends_on.iter().enumerate() {
            let key = key_of(dep);
            let targets: Vec<usize> = if let Some(&(_, k)) = by_expanded.get(&dep.name) {
                // An expanded name wins over a written one only when it is not also the
                // name of a group (a job without replicas has the same name both ways).
                match by_written.get(dep.name.as_str()) {
                    Some(&group) if written[group].count > 1 => {
                        let g = &written[group];
                        (g.first..g.first + g.count).collect()
                    }
                    _ => vec![k],
                }
            } else if let Some(&group) = by_written.get(dep.name.as_str()) {
                let g = &written[group];
                (g.first..g.first + g.count).collect()
            } else {
                let mut names: Vec<&str> = written.iter().map(|w| w.name.as_str()).collect();
                names.sort_unstable();
                let hint = match closest(&dep.name, &names) {
                    Some(near) => format!(" (did you mean {near:?}?)"),
                    None => String::new(),
                };
                return Err(GraphError {
                    job: index,
                    span: dep.span.clone(),
                    key,
                    message: format!("unknown job {:?}{hint}", dep.name),
                });
            };
            let owner = targets
                .first()
                .and_then(|k| by_expanded.get(&jobs[*k].name))
                .map_or(index, |(owner, _)| *owner);
            if owner == index {
                return Err(GraphError {
                    job: index,
                    span: dep.span.clone(),
                    key,
                    message: format!(
                        "job {:?} cannot depend on itself{}",
                        job.name,
                        if dep.name != job.name {
                            format!(" ({:?} is one of its replicas)", dep.name)
                        } else {
                            String::new()
                        }
                    ),
                });
            }
            if !edges[index].iter().any(|(t, _)| *t == owner) {
                edges[index].push((owner, d));
            }
            for k in targets {
                if resolved[index].iter().any(|r| r.job == k) {
                    continue;
                }
                resolved[index].push(Dependency {
                    job: k,
                    name: jobs[k].name.clone(),
                    condition: dep.condition,
                });
            }
        }
    }

    if let Some(cycle) = find_cycle(&edges) {
        // Reported at the first job of the cycle in config order, on the entry that
        // leads on around it.
        let start = cycle
            .iter()
            .enumerate()
            .min_by_key(|(_, job)| **job)
            .map_or(0, |(i, _)| i);
        let mut ordered: Vec<usize> = cycle[start..].to_vec();
        ordered.extend_from_slice(&cycle[..start]);
        let first = ordered[0];
        let next = ordered.get(1).copied().unwrap_or(first);
        let dep_index = edges[first]
            .iter()
            .find(|(t, _)| *t == next)
            .map_or(0, |(_, d)| *d);
        let dep = &written[first].depends_on[dep_index];
        let mut names: Vec<&str> = ordered.iter().map(|j| written[*j].name.as_str()).collect();
        names.push(written[first].name.as_str());
        return Err(GraphError {
            job: first,
            span: dep.span.clone(),
            key: key_of(dep),
            message: format!("dependency cycle: {}", names.join(" → ")),
        });
    }

    for (index, job) in written.iter().enumerate() {
        for k in job.first..job.first + job.count {
            if let Some(spec) = jobs.get_mut(k) {
                spec.depends_on = resolved[index].clone();
            }
        }
    }
    Ok(())
}

/// The key an error about a dependency names: `depends_on` (its entry's position is in
/// the error's line and column).
fn key_of(_dep: &WrittenDependency) -> String {
    "depends_on".to_string()
}

/// A cycle among the written jobs, as the list of jobs around it, if there is one.
/// Iterative, so a long chain of jobs cannot overflow the stack.
fn find_cycle(edges: &[Vec<(usize, usize)>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    for root in 0..edges.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // (node, next edge to look at)
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        mark[root] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&(target, _)) = edges[node].get(*next) {
                *next += 1;
                match mark[target] {
                    Mark::New => {
                        mark[target] = Mark::Open;
                        stack.push((target, 0));
                    }
                    Mark::Open => {
                        let from = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        return Some(stack[from..].iter().map(|(n, _)| *n).collect());
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    None
}

/// Level of every job: 0 without dependencies, else one more than its deepest
/// dependency. Jobs of one level can start together.
pub fn levels(jobs: &[JobSpec]) -> Vec<usize> {
    let mut level: Vec<Option<usize>> = vec![None; jobs.len()];
    // Dependencies always resolve (no cycles), so repeated passes settle; done
    // iteratively so a deep chain cannot overflow the stack.
    for start in 0..jobs.len() {
        let mut stack = vec![start];
        while let Some(&job) = stack.last() {
            if level[job].is_some() {
                stack.pop();
                continue;
            }
            let pending: Vec<usize> = jobs[job]
                .depends_on
                .iter()
                .map(|d| d.job)
                .filter(|d| *d < jobs.len() && level[*d].is_none() && !stack.contains(d))
                .collect();
            if pending.is_empty() {
                let deepest = jobs[job]
                    .depends_on
                    .iter()
                    .filter_map(|d| level.get(d.job).copied().flatten())
                    .max();
                level[job] = Some(deepest.map_or(0, |l| l + 1));
                stack.pop();
            } else {
                stack.extend(pending);
            }
        }
    }
    level.into_iter().map(Option::unwrap_or_default).collect()
}

/// The start order for `forkyard check`: empty without any dependency, else one line per
/// level, dependencies first.
pub fn describe_order(config: &Config) -> String {
    if config.jobs.iter().all(|j| j.depends_on.is_empty()) {
        return String::new();
    }
    let levels = levels(&config.jobs);
    let count = levels.iter().max().map_or(0, |l| l + 1);
    let mut out = format!(
        "start order: {count} level{} (each starts once what it depends on allows)\n",
        if count == 1 { "" } else { "s" }
    );
    for level in 0..count {
        let names: Vec<String> = config
            .jobs
            .iter()
            .zip(&levels)
            .filter(|(_, l)| **l == level)
            .map(|(j, _)| crate::stdio::visible_inline(&j.name).into_owned())
            .collect();
        out.push_str(&format!("  {}: {}\n", level + 1, names.join(", ")));
    }
    out
}

/// A job's service keys for `forkyard check`, one line each (empty when it has none).
pub fn describe_job(job: &JobSpec) -> String {
    let v = |text: &str| crate::stdio::visible_inline(text).into_owned();
    let mut out = String::new();
    if !job.depends_on.is_empty() {
        let deps: Vec<String> = job
            .depends_on
            .iter()
            .map(|d| format!("{} ({})", v(&d.name), d.condition.as_str()))
            .collect();
        out.push_str(&format!("  depends on: {}\n", deps.join(", ")));
    }
    if let Some(ready) = &job.ready {
        out.push_str(&format!("  ready: {}\n", v(&ready.describe(false))));
    }
    if let Some(alive) = &job.alive {
        out.push_str(&format!("  alive: {}\n", v(&alive.describe(true))));
    }
    out
}

/// The candidate closest to `word` by edit distance, if it is close enough.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn err(text: &str) -> String {
        match parse(text, "t.toml", None) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    fn jobs(spec: &[(&str, &str)]) -> String {
        let mut text = String::new();
        for (name, deps) in spec {
            text.push_str(&format!(
                "[[job]]\nname = \"{name}\"\ncmd = [\"true\"]\ndepends_on = {deps}\n"
            ));
        }
        text
    }

    #[test]
    fn cycles_are_spelled_out_from_the_first_job() {
        let e = err(&jobs(&[
            ("a", "[\"b\"]"),
            ("b", "[\"c\"]"),
            ("c", "[\"a\"]"),
        ]));
        assert!(e.contains("dependency cycle: a → b → c → a"), "{e}");
        assert!(e.starts_with("t.toml:4:"), "{e}");
        let e = err(&jobs(&[
            ("x", "[]"),
            ("b", "[\"c\"]"),
            ("c", "{ b = \"started\" }"),
        ]));
        assert!(e.contains("dependency cycle: b → c → b"), "{e}");
    }

    #[test]
    fn unknown_and_self() {
        let e = err(&jobs(&[("web", "[\"dbb\"]"), ("db", "[]")]));
        assert!(
            e.contains("unknown job \"dbb\" (did you mean \"db\"?)"),
            "{e}"
        );
        let e = err(&jobs(&[("web", "[\"web\"]")]));
        assert!(e.contains("cannot depend on itself"), "{e}");
    }

    #[test]
    fn replicas_expand_and_levels_count() {
        let text = "[[job]]\nname = \"db\"\ncmd = [\"true\"]\nreplicas = 2\n\
                    [[job]]\nname = \"web\"\ncmd = [\"true\"]\ndepends_on = [\"db\"]\n\
                    [[job]]\nname = \"one\"\ncmd = [\"true\"]\ndepends_on = { \"db.2\" = \"started\", web = \"finished\" }\n";
        let c = parse(text, "t.toml", None).expect("valid");
        let web = &c.jobs[2];
        let names: Vec<&str> = web.depends_on.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["db.1", "db.2"]);
        assert_eq!(levels(&c.jobs), [0, 0, 1, 2]);
        let order = describe_order(&c);
        assert!(order.contains("3 levels"), "{order}");
        assert!(
            order.contains("  1: db.1, db.2\n  2: web\n  3: one\n"),
            "{order}"
        );
    }
}
