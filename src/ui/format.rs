//! Short, fixed-width texts for table cells, tags and status lines.

/// Truncates to `width` columns (one column per char), marking the cut with `…`.
pub fn fit(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out: String = text.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// Pads or truncates to exactly `width` columns.
/// Built in one allocation: every visible cell goes through here every clock second.
pub fn cell(text: &str, width: usize, right: bool) -> String {
    let count = text.chars().count();
    if count > width {
        return fit(text, width);
    }
    let mut out = String::with_capacity(text.len() + (width - count));
    let pad = |out: &mut String| out.extend(std::iter::repeat_n(' ', width - count));
    if right {
        pad(&mut out);
        out.push_str(text);
    } else {
        out.push_str(text);
        pad(&mut out);
    }
    out
}

/// `1 job`, `0 jobs`, `3 jobs`: a number with the noun that agrees with it.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Short name of a pipeline stage: the program's file name.
pub fn stage_label(argv: &[String]) -> String {
    let program = argv.first().map(String::as_str).unwrap_or("?");
    program.rsplit('/').next().unwrap_or(program).to_string()
}

/// A stage's tag in a pipeline's output: its number (1-based, as headless tags
/// `name[2]`) and its program, so two stages running the same program stay apart
/// (`1 sh`, `2 sh`). At most `width` columns.
pub fn stage_tag(stage: usize, argv: &[String], width: usize) -> String {
    fit(&format!("{} {}", stage + 1, stage_label(argv)), width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_fit_and_pad() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(cell("ab", 4, true), "  ab");
        assert_eq!(count(1, "new line", "new lines"), "1 new line");
        assert_eq!(count(0, "job", "jobs"), "0 jobs");
    }

    #[test]
    fn stage_tags_tell_the_same_program_apart() {
        let sh = vec!["/bin/sh".to_string(), "-c".into(), "x".into()];
        assert_eq!(stage_tag(0, &sh, 12), "1 sh");
        assert_eq!(stage_tag(1, &sh, 12), "2 sh");
        let long = vec!["openssl-with-a-long-name".to_string()];
        assert_eq!(stage_tag(9, &long, 12), "10 openssl-…");
    }
}
