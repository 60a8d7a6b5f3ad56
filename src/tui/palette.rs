//! The `:` command palette's commands: one table for parsing (commands are
//! case-insensitive), Tab completion and the help that lists them.

/// One command: its words, what follows them, what it does.
pub struct Command {
    pub words: &'static str,
    pub args: &'static str,
    pub help: &'static str,
}

const fn c(words: &'static str, args: &'static str, help: &'static str) -> Command {
    Command { words, args, help }
}

#[rustfmt::skip]
pub const COMMANDS: &[Command] = &[
    c("run all", "", "run the steps that are out of date"),
    c("run", "STEP", "run one step (load, standardise, resolve, unify, analyse)"),
    c("load", "", "load every source"),
    c("reload", "SOURCE", "load one source again"),
    c("cancel", "", "cancel the running job"),
    c("undo", "", "undo the latest decision (a bulk at once)"),
    c("find", "TEXT", "find a customer by name, e-mail, phone or id"),
    c("rejects", "[REASON]", "the Rejects screen, filtered by a reason"),
    c("export", "TABLE [FILE]", "export profiles or events (CSV or Parquet by extension)"),
    c("segment save", "NAME", "save the segment in rules/segments.toml"),
    c("segment export", "[FILE]", "export the segment's profiles"),
    c("pipeline", "", "the Pipeline screen (also 1)"),
    c("rules", "", "the Rules screen (also 3)"),
    c("review", "", "the Review screen (also 4)"),
    c("customers", "", "the Customers screen (also 5)"),
    c("analytics", "", "the Analytics screen (also 6)"),
    c("audit", "", "the Audit screen (also 7)"),
    c("refresh", "", "read everything again from the database"),
    c("help", "", "keys and commands"),
    c("quit", "", "quit (also q)"),
];

/// Words `line` could complete to: the command names (their first word,
/// then the second) and, for arguments, `values` (steps, sources, reasons).
pub fn complete(line: &str, values: &dyn Fn(&str) -> Vec<String>) -> Completion {
    let lower = line.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let ends_in_space = line.ends_with(' ') || line.is_empty();
    let (done, partial): (Vec<&str>, &str) = if ends_in_space {
        (words.clone(), "")
    } else {
        (
            words[..words.len().saturating_sub(1)].to_vec(),
            words.last().copied().unwrap_or(""),
        )
    };
    let prefix = done.join(" ");
    let mut options: Vec<String> = Vec::new();
    for cmd in COMMANDS {
        let cw: Vec<&str> = cmd.words.split(' ').collect();
        if cw.len() > done.len() && cw[..done.len()] == done[..] {
            options.push(cw[done.len()].to_string());
        }
    }
    if !done.is_empty() {
        options.extend(values(&prefix));
    }
    options.retain(|o| o.to_lowercase().starts_with(partial));
    options.sort();
    options.dedup();
    let head = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix} ")
    };
    match options.as_slice() {
        [] => Completion::None,
        [one] => Completion::One(format!("{head}{one} ")),
        many => {
            let common = common_prefix(many);
            Completion::Many(format!("{head}{common}"), many.to_vec())
        }
    }
}

/// What Tab does to the palette's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    None,
    One(String),
    /// The line completed as far as the options agree, and the options.
    Many(String, Vec<String>),
}

fn common_prefix(words: &[String]) -> String {
    let first = &words[0];
    let mut n = first.len();
    for w in &words[1..] {
        n = n.min(
            first
                .chars()
                .zip(w.chars())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a.len_utf8())
                .sum(),
        );
    }
    first[..n].to_string()
}

/// A command line with its command words in lower case (arguments kept as
/// typed: file names, reasons and search text).
pub fn normalise(line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let mut in_command = true;
    for (i, w) in words.iter().enumerate() {
        let lower = w.to_lowercase();
        let so_far: Vec<String> = out.iter().chain(std::iter::once(&lower)).cloned().collect();
        let joined = so_far.join(" ");
        let is_command_word = in_command
            && COMMANDS
                .iter()
                .any(|c| c.words == joined || c.words.starts_with(&format!("{joined} ")))
            || i == 0;
        if is_command_word {
            out.push(lower);
        } else {
            in_command = false;
            out.push(w.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn completes_commands_and_their_arguments() {
        assert_eq!(complete("cu", &none), Completion::One("customers ".into()));
        assert_eq!(complete("run a", &none), Completion::One("run all ".into()));
        match complete("re", &none) {
            Completion::Many(line, options) => {
                assert_eq!(line, "re");
                assert!(options.contains(&"rejects".to_string()));
                assert!(options.contains(&"reload".to_string()));
            }
            other => panic!("{other:?}"),
        }
        let steps = |prefix: &str| -> Vec<String> {
            if prefix == "run" {
                vec!["resolve".into(), "unify".into()]
            } else {
                Vec::new()
            }
        };
        assert_eq!(
            complete("run u", &steps),
            Completion::One("run unify ".into())
        );
        assert_eq!(
            complete("RUN U", &steps),
            Completion::One("run unify ".into())
        );
    }

    #[test]
    fn command_words_fold_case_arguments_do_not() {
        assert_eq!(normalise("Run ALL"), vec!["run", "all"]);
        assert_eq!(
            normalise("EXPORT profiles /tmp/Out.csv"),
            vec!["export", "profiles", "/tmp/Out.csv"]
        );
        assert_eq!(normalise("Find Björn"), vec!["find", "Björn"]);
    }
}
