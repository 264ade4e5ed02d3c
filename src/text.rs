//! Text we print that comes from outside: part and backup names, database and table names,
//! what a child or a server said. Owns the one rule for them: a control character (an escape
//! sequence that would clear or rewrite the operator's terminal, a carriage return that hides
//! what came before, a newline inside a name) is shown escaped, never sent to the terminal.
//! JSON output escapes them by itself.

/// `s` with every control character shown as `\n`, `\r`, `\t`, `\e` or `\xNN` (`\u{NN}` for
/// C1 controls), and a backslash as it is.
pub fn escape(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push(&mut out, c);
    }
    out
}

/// A message for the terminal: like [`escape`], but newlines and tabs are kept (messages are
/// laid out in lines); every other control character escaped.
pub fn escape_message(s: &str) -> String {
    if !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c == '\n' || c == '\t' {
            out.push(c);
        } else {
            push(&mut out, c);
        }
    }
    out
}

fn push(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x1b' => out.push_str("\\e"),
        c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("inst-q\x1b[2J-1"), "inst-q\\e[2J-1");
        assert_eq!(escape("a\nb\rc\td\x7f\u{9b}"), "a\\nb\\rc\\td\\x7f\\u{9b}");
        assert_eq!(escape("plain näme"), "plain näme");
        assert_eq!(
            escape_message("line 1\n\tline \x1b]0;owned\x07 2"),
            "line 1\n\tline \\e]0;owned\\x07 2"
        );
    }
}
