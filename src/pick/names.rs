//! What a statement of a plain dump is about, read from its first tokens: the relation it
//! creates or changes, and what it ties together (a partition to its parent, a sequence to
//! its table, an index to its table). Pure functions of bytes; anything not recognised is
//! [`Fact::Unknown`], which a table pick leaves out.

use std::fmt;

/// A table, view, sequence or index, by its names as the catalog holds them (unquoted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Relation {
    pub schema: String,
    pub name: String,
}

impl Relation {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Relation {
        Relation {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

/// An identifier as SQL (and `--table`) would write it: bare when it reads back the same,
/// else in double quotes.
pub fn quote_ident(s: &str) -> String {
    let bare = !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if bare {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.name)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An unquoted word, folded to lower case as the server folds it.
    Word(String),
    /// A quoted identifier, as it is.
    Quoted(String),
    /// A string constant (its contents are never needed).
    Str,
    Sym(char),
}

impl Tok {
    fn is(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }

    fn ident(&self) -> Option<&str> {
        match self {
            Tok::Word(w) | Tok::Quoted(w) => Some(w),
            _ => None,
        }
    }
}

/// The first `max` tokens of a statement.
fn tokens(text: &[u8], max: usize) -> Vec<Tok> {
    let s = String::from_utf8_lossy(text);
    let b: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < max {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && b.get(i + 1) == Some(&'-') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && b.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            let mut w = String::new();
            i += 1;
            while i < b.len() {
                if b[i] == '"' {
                    if b.get(i + 1) == Some(&'"') {
                        w.push('"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                w.push(b[i]);
                i += 1;
            }
            out.push(Tok::Quoted(w));
        } else if c == '\'' {
            // pg_dump writes standard strings; a doubled quote stays inside.
            i += 1;
            while i < b.len() {
                if b[i] == '\'' {
                    if b.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push(Tok::Str);
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '$') {
                i += 1;
            }
            let w: String = b[start..i].iter().collect();
            out.push(Tok::Word(w.to_lowercase()));
        } else {
            out.push(Tok::Sym(c));
            i += 1;
        }
    }
    out
}

/// A dotted name at `t[i..]`: its parts and the index after it.
fn dotted(t: &[Tok], mut i: usize) -> Option<(Vec<String>, usize)> {
    let mut parts = vec![t.get(i)?.ident()?.to_string()];
    i += 1;
    while t.get(i) == Some(&Tok::Sym('.')) {
        parts.push(t.get(i + 1)?.ident()?.to_string());
        i += 2;
    }
    Some((parts, i))
}

/// A relation at `t[i..]`, schema-qualified or in `schema`.
fn relation(t: &[Tok], i: usize, schema: &str) -> Option<(Relation, usize)> {
    let (mut p, next) = dotted(t, i)?;
    let name = p.pop()?;
    let schema = p.pop().unwrap_or_else(|| schema.to_string());
    Some((Relation::new(schema, name), next))
}

fn skip(t: &[Tok], mut i: usize, words: &[&str]) -> usize {
    while t.get(i).is_some_and(|k| words.iter().any(|w| k.is(w))) {
        i += 1;
    }
    i
}

/// The first word `kw` at parenthesis depth 0 from `i`.
fn find_top(t: &[Tok], i: usize, kw: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (k, tok) in t.iter().enumerate().skip(i) {
        match tok {
            Tok::Sym('(') => depth += 1,
            Tok::Sym(')') => depth -= 1,
            tok if depth == 0 && tok.is(kw) => return Some(k),
            _ => {}
        }
    }
    None
}

/// What one statement says, for a pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// `CREATE TABLE|VIEW|SEQUENCE …` (`PARTITION OF` a parent).
    Creates {
        rel: Relation,
        partition_of: Option<Relation>,
    },
    /// About this relation (an `ALTER TABLE`, a comment, a grant, a trigger …).
    On(Relation),
    /// `ALTER TABLE parent ATTACH PARTITION child` (or `ALTER INDEX`).
    Attach {
        parent: Relation,
        child: Relation,
    },
    /// `ALTER SEQUENCE seq OWNED BY table.column`.
    Owned {
        seq: Relation,
        table: Relation,
    },
    /// `ALTER TABLE table ALTER COLUMN … ADD GENERATED … (SEQUENCE NAME seq …)`.
    Identity {
        table: Relation,
        seq: Relation,
    },
    /// `CREATE INDEX index ON table`.
    Index {
        index: Relation,
        table: Relation,
    },
    Unknown,
}

/// What `text` is about; unqualified names are in `schema` (the item's header's).
pub fn fact(text: &[u8], schema: &str) -> Fact {
    let t = tokens(text, 256);
    fact_of(&t, schema).unwrap_or(Fact::Unknown)
}

fn fact_of(t: &[Tok], schema: &str) -> Option<Fact> {
    let first = t.first()?;
    if first.is("create") {
        return create(t, schema);
    }
    if first.is("alter") {
        return alter(t, schema);
    }
    if first.is("comment") && t.get(1)?.is("on") {
        return described(t, 2, schema);
    }
    if first.is("security") && t.get(1)?.is("label") {
        let on = find_top(t, 2, "on")?;
        return described(t, on + 1, schema);
    }
    if first.is("grant") || first.is("revoke") {
        let on = find_top(t, 1, "on")?;
        let k = t.get(on + 1)?;
        let at = if k.is("table") || k.is("sequence") {
            on + 2
        } else if [
            "function",
            "schema",
            "type",
            "database",
            "domain",
            "language",
            "procedure",
            "routine",
            "foreign",
            "large",
            "tablespace",
            "all",
            "parameter",
        ]
        .iter()
        .any(|w| k.is(w))
        {
            return None;
        } else {
            on + 1
        };
        return relation(t, at, schema).map(|(r, _)| Fact::On(r));
    }
    if first.is("refresh") {
        let i = skip(t, 1, &["materialized", "view", "concurrently"]);
        return relation(t, i, schema).map(|(r, _)| Fact::On(r));
    }
    None
}

fn create(t: &[Tok], schema: &str) -> Option<Fact> {
    let i = skip(
        t,
        1,
        &[
            "or",
            "replace",
            "unlogged",
            "temp",
            "temporary",
            "global",
            "local",
        ],
    );
    let k = t.get(i)?;
    if k.is("unique") || k.is("index") {
        let i = skip(t, i, &["unique", "index", "concurrently"]);
        let i = if t.get(i)?.is("if") { i + 3 } else { i };
        let (index, i) = if t.get(i)?.is("on") {
            (None, i)
        } else {
            let (r, i) = relation(t, i, schema)?;
            (Some(r), i)
        };
        if !t.get(i)?.is("on") {
            return None;
        }
        let i = skip(t, i + 1, &["only"]);
        let (table, _) = relation(t, i, schema)?;
        return Some(match index {
            Some(index) => Fact::Index { index, table },
            None => Fact::On(table),
        });
    }
    if k.is("trigger") || (k.is("constraint") && t.get(i + 1)?.is("trigger")) {
        let on = find_top(t, i + 2, "on")?;
        return relation(t, on + 1, schema).map(|(r, _)| Fact::On(r));
    }
    if k.is("policy") {
        let on = find_top(t, i + 2, "on")?;
        return relation(t, on + 1, schema).map(|(r, _)| Fact::On(r));
    }
    if k.is("rule") {
        let to = find_top(t, i + 2, "to")?;
        return relation(t, to + 1, schema).map(|(r, _)| Fact::On(r));
    }
    if k.is("statistics") {
        let from = find_top(t, i + 1, "from")?;
        return relation(t, from + 1, schema).map(|(r, _)| Fact::On(r));
    }
    let i = skip(t, i, &["foreign", "materialized", "recursive"]);
    let k = t.get(i)?;
    if !(k.is("table") || k.is("view") || k.is("sequence")) {
        return None;
    }
    let i = if t.get(i + 1)?.is("if") { i + 4 } else { i + 1 };
    let (rel, next) = relation(t, i, schema)?;
    let partition_of = (t.get(next).is_some_and(|k| k.is("partition"))
        && t.get(next + 1).is_some_and(|k| k.is("of")))
    .then(|| relation(t, next + 2, schema).map(|(r, _)| r))
    .flatten();
    Some(Fact::Creates { rel, partition_of })
}

fn alter(t: &[Tok], schema: &str) -> Option<Fact> {
    let i = skip(t, 1, &["foreign", "materialized"]);
    let k = t.get(i)?;
    if !(k.is("table") || k.is("sequence") || k.is("view") || k.is("index")) {
        return None;
    }
    let i = skip(t, i + 1, &["only"]);
    let i = if t.get(i)?.is("if") { i + 2 } else { i };
    let i = skip(t, i, &["only"]);
    let (rel, next) = relation(t, i, schema)?;
    let at = |w: &str, k: usize| t.get(k).is_some_and(|x| x.is(w));
    if at("attach", next) && at("partition", next + 1) {
        let (child, _) = relation(t, next + 2, schema)?;
        return Some(Fact::Attach { parent: rel, child });
    }
    if at("owned", next) && at("by", next + 1) {
        let (mut parts, _) = dotted(t, next + 2)?;
        if parts.len() < 2 {
            return Some(Fact::On(rel));
        }
        parts.pop();
        let name = parts.pop()?;
        let s = parts.pop().unwrap_or_else(|| schema.to_string());
        return Some(Fact::Owned {
            seq: rel,
            table: Relation::new(s, name),
        });
    }
    if let Some(g) = find_top(t, next, "generated") {
        if let Some(n) = (g..t.len()).find(|&k| at("sequence", k) && at("name", k + 1)) {
            let (seq, _) = relation(t, n + 2, schema)?;
            return Some(Fact::Identity { table: rel, seq });
        }
    }
    Some(Fact::On(rel))
}

/// The table a foreign key's `REFERENCES` names.
pub fn references(text: &[u8], schema: &str) -> Option<Relation> {
    let t = tokens(text, 4096);
    let k = (0..t.len()).find(|&k| t[k].is("references"))?;
    relation(&t, k + 1, schema).map(|(r, _)| r)
}

/// `COMMENT ON` / `SECURITY LABEL … ON` from `i`: the object type, its name.
fn described(t: &[Tok], i: usize, schema: &str) -> Option<Fact> {
    let k = t.get(i)?;
    if k.is("column") {
        let (mut p, _) = dotted(t, i + 1)?;
        p.pop();
        let name = p.pop()?;
        let s = p.pop().unwrap_or_else(|| schema.to_string());
        return Some(Fact::On(Relation::new(s, name)));
    }
    if ["constraint", "trigger", "policy", "rule"]
        .iter()
        .any(|w| k.is(w))
    {
        let on = find_top(t, i + 2, "on")?;
        let on = skip(t, on + 1, &["domain"]);
        if t.get(on - 1)?.is("domain") {
            return None;
        }
        return relation(t, on, schema).map(|(r, _)| Fact::On(r));
    }
    let i = skip(t, i, &["foreign", "materialized"]);
    let k = t.get(i)?;
    if ["table", "view", "sequence", "index"]
        .iter()
        .any(|w| k.is(w))
    {
        return relation(t, i + 1, schema).map(|(r, _)| Fact::On(r));
    }
    None
}

/// Replaces the database name after the first `DATABASE` keyword of `text` (`CREATE
/// DATABASE x`, `ALTER DATABASE x …`, `COMMENT ON DATABASE x`, `GRANT … ON DATABASE x`) with
/// `new`, quoted. None when the statement has no such name.
pub fn rename_database(text: &[u8], new: &str) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(text).ok()?;
    let upper = s.to_ascii_uppercase();
    let mut from = 0;
    let at = loop {
        let k = from + upper[from..].find("DATABASE")?;
        let before_ok = k == 0 || !is_word(upper.as_bytes()[k - 1]);
        let end = k + "DATABASE".len();
        let after_ok = upper
            .as_bytes()
            .get(end)
            .is_some_and(|b| b.is_ascii_whitespace());
        if before_ok && after_ok {
            break end;
        }
        from = end;
    };
    let rest = &s[at..];
    let lead = rest.len() - rest.trim_start().len();
    let start = at + lead;
    let name_len = ident_len(&s[start..])?;
    let mut out = Vec::with_capacity(text.len() + new.len());
    out.extend_from_slice(&text[..start]);
    out.extend_from_slice(format!("\"{}\"", new.replace('"', "\"\"")).as_bytes());
    out.extend_from_slice(&text[start + name_len..]);
    Some(out)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The length of the identifier at the start of `s`.
fn ident_len(s: &str) -> Option<usize> {
    if let Some(q) = s.strip_prefix('"') {
        let mut chars = q.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if chars.peek().map(|&(_, c)| c) == Some('"') {
                    chars.next();
                } else {
                    return Some(i + 2);
                }
            }
        }
        return None;
    }
    let n = s
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .map_or(s.len(), |(i, _)| i);
    (n > 0).then_some(n)
}

/// The names closest to `want`, for "did you mean": the same name in another case first,
/// then those at a small edit distance.
pub fn closest<'a>(want: &str, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .filter_map(|n| {
            if n.eq_ignore_ascii_case(want) {
                return Some((0, n));
            }
            let d = distance(&want.to_lowercase(), &n.to_lowercase());
            (d <= (want.chars().count() / 3).max(2)).then_some((d + 1, n))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str, n: &str) -> Relation {
        Relation::new(s, n)
    }

    #[test]
    fn statements_say_what_they_are_about() {
        let f = |s: &str| fact(s.as_bytes(), "hdr");
        assert_eq!(
            f("CREATE TABLE public.\"Order Items\" (\n a int\n);\n"),
            Fact::Creates {
                rel: r("public", "Order Items"),
                partition_of: None
            }
        );
        assert_eq!(
            f("CREATE TABLE s.c PARTITION OF s.p FOR VALUES IN (1);\n"),
            Fact::Creates {
                rel: r("s", "c"),
                partition_of: Some(r("s", "p"))
            }
        );
        assert_eq!(
            f("ALTER TABLE ONLY s.p ATTACH PARTITION s.c FOR VALUES IN (1);\n"),
            Fact::Attach {
                parent: r("s", "p"),
                child: r("s", "c")
            }
        );
        assert_eq!(
            f("ALTER SEQUENCE shop.customers_id_seq OWNED BY shop.customers.id;\n"),
            Fact::Owned {
                seq: r("shop", "customers_id_seq"),
                table: r("shop", "customers")
            }
        );
        assert_eq!(
            f("ALTER TABLE shop.orders ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (\n    SEQUENCE NAME shop.orders_id_seq\n    START WITH 1\n);\n"),
            Fact::Identity {
                table: r("shop", "orders"),
                seq: r("shop", "orders_id_seq")
            }
        );
        assert_eq!(
            f("CREATE UNIQUE INDEX \"I x\" ON ONLY \"S\".\"T.1\" USING btree (a);\n"),
            Fact::Index {
                index: r("hdr", "I x"),
                table: r("S", "T.1")
            }
        );
        assert_eq!(
            f("CREATE TRIGGER t BEFORE UPDATE OF a, b ON public.orders FOR EACH ROW EXECUTE FUNCTION f();\n"),
            Fact::On(r("public", "orders"))
        );
        assert_eq!(
            f("CREATE RULE r AS\n    ON INSERT TO public.t DO INSTEAD NOTHING;\n"),
            Fact::On(r("public", "t"))
        );
        assert_eq!(
            f("COMMENT ON COLUMN public.t.c IS 'x';\n"),
            Fact::On(r("public", "t"))
        );
        assert_eq!(
            f("COMMENT ON CONSTRAINT c ON public.t IS 'x ON y';\n"),
            Fact::On(r("public", "t"))
        );
        assert_eq!(
            f("COMMENT ON CONSTRAINT c ON DOMAIN public.d IS 'x';\n"),
            Fact::Unknown
        );
        assert_eq!(
            f("GRANT SELECT(a) ON TABLE public.t TO reader;\n"),
            Fact::On(r("public", "t"))
        );
        assert_eq!(f("GRANT ALL ON SCHEMA public TO x;\n"), Fact::Unknown);
        assert_eq!(
            f("CREATE FUNCTION public.f() RETURNS int AS $$ select 1 $$;\n"),
            Fact::Unknown
        );
        assert_eq!(
            f("ALTER TABLE ONLY public.t ALTER COLUMN id SET DEFAULT nextval('public.s'::regclass);\n"),
            Fact::On(r("public", "t"))
        );
        assert_eq!(
            f("CREATE STATISTICS public.st ON a, b FROM public.t;\n"),
            Fact::On(r("public", "t"))
        );
    }

    #[test]
    fn a_database_is_renamed_where_its_name_is() {
        let f = |s: &str| {
            String::from_utf8(rename_database(s.as_bytes(), "new \"x\"").unwrap()).unwrap()
        };
        assert_eq!(
            f("CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8';\n"),
            "CREATE DATABASE \"new \"\"x\"\"\" WITH TEMPLATE = template0 ENCODING = 'UTF8';\n"
        );
        assert_eq!(
            f("ALTER DATABASE \"My DB\" SET search_path TO 'a';\n"),
            "ALTER DATABASE \"new \"\"x\"\"\" SET search_path TO 'a';\n"
        );
        assert_eq!(
            f("GRANT CONNECT ON DATABASE shop TO r;\n"),
            "GRANT CONNECT ON DATABASE \"new \"\"x\"\"\" TO r;\n"
        );
        assert!(rename_database(b"SELECT 1;\n", "x").is_none());
    }

    #[test]
    fn the_closest_names_are_suggested() {
        let names = ["orders", "Orders", "order_items", "customers"];
        assert_eq!(closest("order", names), ["Orders", "orders"]);
        assert_eq!(
            closest("ORDERS", names)[..2],
            ["Orders".to_string(), "orders".to_string()]
        );
        assert!(closest("zzz", names).is_empty());
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Order Items"), "\"Order Items\"");
    }
}
