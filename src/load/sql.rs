//! What the loader reads in a plain dump's statements: session settings, transactions, and
//! the phase and locks of a post-data item, from its header's object type checked against
//! its statement. Pure functions of bytes.

use crate::split::{parse_qualified, ObjectKind};

/// Which tables a post-data item locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Locks {
    /// `shared`: a lone `CREATE INDEX`, whose SHARE lock lets another `CREATE INDEX` on the
    /// same table run beside it; anything else (`ADD PRIMARY KEY` takes ACCESS EXCLUSIVE, a
    /// foreign key SHARE ROW EXCLUSIVE on both tables) excludes every other item there.
    Tables { tables: Vec<String>, shared: bool },
    /// Unknown: conflicts with everything.
    All,
}

impl Locks {
    pub(crate) fn exclusive(tables: Vec<String>) -> Locks {
        Locks::Tables {
            tables,
            shared: false,
        }
    }

    pub(crate) fn conflicts(&self, other: &Locks) -> bool {
        match (self, other) {
            (
                Locks::Tables {
                    tables: a,
                    shared: sa,
                },
                Locks::Tables {
                    tables: b,
                    shared: sb,
                },
            ) => !(*sa && *sb) && a.iter().any(|t| b.contains(t)),
            _ => true,
        }
    }

    pub(crate) fn first_table(&self) -> Option<&String> {
        match self {
            Locks::Tables { tables, .. } => tables.first(),
            Locks::All => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PostClass {
    Index(Locks),
    Attach,
    Fk(Locks),
    Rest,
    Unknown,
}

pub(crate) enum Setting {
    Set(String),
    Reset(String),
    ResetAll,
}

/// `SET name = …`, `SET SESSION AUTHORIZATION …`, `SET ROLE …`, `RESET name`,
/// `SELECT pg_catalog.set_config('name', …, false);`: session state, not work.
pub(crate) fn session_setting(text: &[u8]) -> Option<Setting> {
    // A setting is a short statement: a long one (a 200 MB INSERT) is not looked at, so that
    // it is not copied to be lowercased.
    let head = text.trim_ascii_start();
    let starts = |p: &[u8]| head.len() >= p.len() && head[..p.len()].eq_ignore_ascii_case(p);
    if text.len() > 64 << 10 || !(starts(b"set") || starts(b"reset") || starts(b"select")) {
        return None;
    }
    let s = std::str::from_utf8(text).ok()?.trim();
    let lower = s.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .trim_end_matches(';')
        .split(|c: char| c.is_ascii_whitespace() || c == '=')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["set", "local", ..] | ["set", "transaction", ..] | ["set", "constraints", ..] => None,
        ["set", "session", "characteristics", ..] => None,
        ["set", "session", "authorization", ..] => {
            Some(Setting::Set("session authorization".into()))
        }
        ["set", "session", name, _, ..] | ["set", name, _, ..] => {
            Some(Setting::Set(name.trim_matches('"').to_string()))
        }
        ["reset", "all"] => Some(Setting::ResetAll),
        ["reset", "session", "authorization"] => {
            Some(Setting::Reset("session authorization".into()))
        }
        ["reset", name] => Some(Setting::Reset(name.to_string())),
        _ => {
            let rest = lower.strip_prefix("select pg_catalog.set_config('")?;
            let (name, tail) = rest.split_once('\'')?;
            let tail = tail.trim_end().trim_end_matches(';').trim_end();
            tail.ends_with("false)")
                .then(|| Setting::Set(name.to_string()))
        }
    }
}

/// Some(true) for BEGIN / START TRANSACTION, Some(false) for COMMIT / END / ROLLBACK / ABORT.
pub(crate) fn transaction_statement(text: &[u8]) -> Option<bool> {
    let head: String = String::from_utf8_lossy(&text[..text.len().min(32)])
        .trim_start()
        .to_ascii_uppercase();
    let word = head
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    match word {
        "BEGIN" => Some(true),
        "START" if head.starts_with("START TRANSACTION") => Some(true),
        "COMMIT" | "END" | "ROLLBACK" | "ABORT" => Some(false),
        // PREPARE TRANSACTION ends it too.
        "PREPARE" if head.starts_with("PREPARE TRANSACTION") => Some(false),
        _ => None,
    }
}

/// A post-data item's phase, from its header's type, checked against its statement.
pub(crate) fn classify_post(kind: &ObjectKind, text: &[u8], statements: usize) -> PostClass {
    let s = String::from_utf8_lossy(text);
    let s = s.trim_start();
    match kind {
        ObjectKind::Index => {
            let rest = s
                .strip_prefix("CREATE INDEX ")
                .or_else(|| s.strip_prefix("CREATE UNIQUE INDEX "));
            match rest.and_then(index_table) {
                Some(t) => PostClass::Index(Locks::Tables {
                    tables: vec![t],
                    shared: statements == 1,
                }),
                None => PostClass::Unknown,
            }
        }
        ObjectKind::Constraint => match alter_table(s) {
            Some((t, _)) => PostClass::Index(Locks::exclusive(vec![t])),
            None => PostClass::Unknown,
        },
        ObjectKind::FkConstraint => match alter_table(s) {
            Some((t, rest)) => match rest
                .find(" REFERENCES ")
                .and_then(|k| parse_qualified(&rest[k + " REFERENCES ".len()..]).map(|(r, _)| r))
            {
                Some(r) => PostClass::Fk(Locks::exclusive(vec![t, r])),
                None => PostClass::Fk(Locks::All),
            },
            None => PostClass::Unknown,
        },
        ObjectKind::IndexAttach => PostClass::Attach,
        ObjectKind::Late => PostClass::Rest,
        _ => PostClass::Unknown,
    }
}

/// `name ON [ONLY] table USING …` (after `CREATE [UNIQUE] INDEX `).
fn index_table(rest: &str) -> Option<String> {
    let (_, after) = parse_qualified(rest)?;
    let after = after.trim_start().strip_prefix("ON ")?.trim_start();
    let after = after.strip_prefix("ONLY ").unwrap_or(after);
    parse_qualified(after).map(|(t, _)| t)
}

/// `ALTER TABLE [ONLY] table ADD CONSTRAINT …`: the table and what follows it.
fn alter_table(s: &str) -> Option<(String, &str)> {
    let rest = s.strip_prefix("ALTER TABLE ")?.trim_start();
    let rest = rest.strip_prefix("ONLY ").unwrap_or(rest);
    let (t, after) = parse_qualified(rest)?;
    after
        .trim_start()
        .starts_with("ADD CONSTRAINT ")
        .then_some((t, after))
}

/// The COPY statement's table in the spelling [`parse_qualified`] gives.
pub(crate) fn canonical_table(t: &str) -> String {
    parse_qualified(t).map_or_else(|| t.to_string(), |(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_recognised() {
        assert!(
            matches!(session_setting(b"SET statement_timeout = 0;\n"), Some(Setting::Set(k)) if k == "statement_timeout")
        );
        assert!(
            matches!(session_setting(b"SET default_tablespace = '';\n"), Some(Setting::Set(k)) if k == "default_tablespace")
        );
        assert!(
            matches!(session_setting(b"SET SESSION AUTHORIZATION 'me';\n"), Some(Setting::Set(k)) if k == "session authorization")
        );
        assert!(
            matches!(session_setting(b"SELECT pg_catalog.set_config('search_path', '', false);\n"), Some(Setting::Set(k)) if k == "search_path")
        );
        assert!(
            session_setting(b"SELECT pg_catalog.set_config('search_path', '', true);\n").is_none()
        );
        assert!(session_setting(b"SET LOCAL x = 1;\n").is_none());
        assert!(session_setting(b"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;\n").is_none());
        assert!(session_setting(b"SELECT pg_catalog.setval('s', 1, true);\n").is_none());
        assert!(matches!(
            session_setting(b"RESET ALL;\n"),
            Some(Setting::ResetAll)
        ));
    }

    #[test]
    fn post_data_items_are_classified_by_header_and_statement() {
        assert_eq!(
            classify_post(
                &ObjectKind::parse("INDEX"),
                b"CREATE INDEX i ON public.t USING btree (a);\n",
                1
            ),
            PostClass::Index(Locks::Tables {
                tables: vec!["\"public\".\"t\"".into()],
                shared: true
            })
        );
        assert_eq!(
            classify_post(&ObjectKind::parse("INDEX"),
                b"CREATE UNIQUE INDEX \"I x\" ON ONLY \"S\".\"T.1\" USING btree (a);\nALTER TABLE \"S\".\"T.1\" CLUSTER ON \"I x\";\n",
                2
            ),
            PostClass::Index(Locks::exclusive(vec!["\"S\".\"T.1\"".into()]))
        );
        assert_eq!(
            classify_post(&ObjectKind::parse("FK CONSTRAINT"),
                b"ALTER TABLE ONLY public.items\n    ADD CONSTRAINT f FOREIGN KEY (o) REFERENCES public.orders(id);\n",
                1
            ),
            PostClass::Fk(Locks::exclusive(vec![
                "\"public\".\"items\"".into(),
                "\"public\".\"orders\"".into()
            ]))
        );
        // Two lone CREATE INDEX on one table may run together; a key and an index may not.
        let share = |t: &str| Locks::Tables {
            tables: vec![t.into()],
            shared: true,
        };
        assert!(!share("a").conflicts(&share("a")));
        assert!(share("a").conflicts(&Locks::exclusive(vec!["a".into()])));
        assert!(!share("a").conflicts(&Locks::exclusive(vec!["b".into()])));
        assert!(Locks::All.conflicts(&share("b")));
        // A header that says INDEX over a statement that is not one: run it in its place.
        assert_eq!(
            classify_post(&ObjectKind::parse("INDEX"), b"DROP TABLE t;\n", 1),
            PostClass::Unknown
        );
        assert_eq!(
            classify_post(&ObjectKind::parse("TRIGGER"), b"CREATE TRIGGER x ...;\n", 1),
            PostClass::Rest
        );
        assert_eq!(
            classify_post(&ObjectKind::parse("SOMETHING NEW"), b"SELECT 1;\n", 1),
            PostClass::Unknown
        );
        assert_eq!(canonical_table("public.Orders"), "\"public\".\"orders\"");
    }

    #[test]
    fn transactions_are_tracked() {
        assert_eq!(transaction_statement(b"BEGIN;\n"), Some(true));
        assert_eq!(transaction_statement(b"COMMIT;\n"), Some(false));
        assert_eq!(transaction_statement(b"BEGINNING;\n"), None);
        assert_eq!(transaction_statement(b"SELECT 1;\n"), None);
    }
}
