use super::*;
use crate::split::{normalize, split_all};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pgdump")
            .join(name),
    )
    .unwrap()
}

fn run(pick: &Pick, dump: &[u8], step: usize) -> Result<(String, PickReport)> {
    let mut p = Picker::new(Arc::new(pick.clone()));
    let mut out = Vec::new();
    for c in dump.chunks(step) {
        p.feed(c)?;
        out.extend(p.take());
    }
    let r = p.finish()?;
    out.extend(p.take());
    Ok((String::from_utf8(out).unwrap(), r))
}

fn tables(t: &[&str]) -> Pick {
    Pick {
        tables: t.iter().map(|t| Pick::parse_table(t).unwrap()).collect(),
        ..Pick::default()
    }
}

const DUMPALLS: [&str; 4] = [
    "pg13-dumpall.sql",
    "pg14-dumpall.sql",
    "pg16-dumpall.sql",
    "pg17-dumpall.sql",
];

#[test]
fn picking_everything_gives_the_same_items() {
    let everything = Pick {
        globals: true,
        ..Pick::default()
    };
    for f in DUMPALLS.iter().chain(&["fixture.sql"]) {
        let dump = fixture(f);
        let (out, _) = run(&everything, &dump, 1 << 20).unwrap();
        assert_eq!(
            normalize(split_all(out.as_bytes(), 4096)),
            normalize(split_all(&dump, 4096)),
            "{f}"
        );
    }
}

#[test]
fn a_table_brings_what_belongs_to_it_and_nothing_else() {
    for f in DUMPALLS {
        let dump = fixture(f);
        let (out, report) = run(&tables(&["shop.orders"]), &dump, 1 << 20).unwrap();
        for want in [
            "\\connect shop\n",
            "CREATE TABLE shop.orders (",
            "COMMENT ON TABLE shop.orders IS",
            "COPY shop.orders (",
            "ADD CONSTRAINT orders_pkey PRIMARY KEY",
            "CREATE INDEX orders_status_idx ON shop.orders",
            "orders_id_seq",
            "SET client_encoding",
        ] {
            assert!(out.contains(want), "{f}: {want} missing in\n{out}");
        }
        for not in [
            "CREATE ROLE",
            "CREATE DATABASE",
            "ALTER DATABASE",
            "customers",
            "Order Items",
            "CREATE TYPE",
            "CREATE FUNCTION",
            "CREATE VIEW",
            "CREATE SCHEMA",
            "\\connect postgres",
        ] {
            assert!(!out.contains(not), "{f}: {not} in\n{out}");
        }
        assert_eq!(report.left_out.len(), 1, "{f}: {:?}", report.left_out);
        assert!(
            report.left_out[0].contains("shop.customers"),
            "{:?}",
            report.left_out
        );
        assert_eq!(report.databases, ["shop"], "{f}");
        // Byte for byte the same, in any chunking.
        for step in [1, 7, 4093] {
            assert_eq!(
                run(&tables(&["shop.orders"]), &dump, step).unwrap().0,
                out,
                "{f} {step}"
            );
        }
    }
}

#[test]
fn a_table_brings_its_serial_sequence_and_default() {
    let dump = fixture("pg17-dumpall.sql");
    let (out, report) = run(&tables(&["shop.customers"]), &dump, 4096).unwrap();
    for want in [
        "CREATE SEQUENCE shop.customers_id_seq",
        "OWNED BY shop.customers.id",
        "SET DEFAULT nextval('shop.customers_id_seq'",
        "setval('shop.customers_id_seq'",
        "COPY shop.customers (",
        "customers_email_key",
    ] {
        assert!(out.contains(want), "{want} missing in\n{out}");
    }
    assert!(!out.contains("orders"), "{out}");
    assert!(report.left_out.is_empty());
    // The sequence was held until its OWNED BY said whose it is, and kept in its place.
    let seq = out.find("CREATE SEQUENCE").unwrap();
    assert!(out.find("CREATE TABLE shop.customers").unwrap() < seq);
    assert!(seq < out.find("OWNED BY").unwrap());
    // Both tables: the foreign key between them comes along.
    let (out, report) = run(&tables(&["shop.customers", "shop.orders"]), &dump, 4096).unwrap();
    assert!(out.contains("orders_customer_id_fkey"));
    assert!(report.left_out.is_empty());
}

#[test]
fn a_schema_brings_everything_in_it() {
    let dump = fixture("pg16-dumpall.sql");
    let pick = Pick {
        schemas: vec!["shop".into()],
        databases: vec!["shop".into()],
        ..Pick::default()
    };
    let (out, _) = run(&pick, &dump, 4096).unwrap();
    for want in [
        "CREATE SCHEMA shop;",
        "CREATE TYPE shop.status",
        "CREATE FUNCTION",
        "CREATE VIEW shop.paid",
        "orders_customer_id_fkey",
    ] {
        assert!(out.contains(want), "{want} missing in\n{out}");
    }
    assert!(!out.contains("Order Items"));
    assert!(!out.contains("empty_table"));
}

#[test]
fn a_database_into_a_new_name_never_names_the_old_one() {
    for f in DUMPALLS {
        let dump = fixture(f);
        let pick = Pick {
            databases: vec!["shop".into()],
            into: Some("shop_yesterday".into()),
            ..Pick::default()
        };
        let (out, report) = run(&pick, &dump, 4096).unwrap();
        assert!(
            out.contains("CREATE DATABASE \"shop_yesterday\" WITH TEMPLATE = template0"),
            "{f}\n{out}"
        );
        assert!(
            out.contains("ALTER DATABASE \"shop_yesterday\" OWNER TO postgres;"),
            "{f}"
        );
        assert!(out.contains("\\connect shop_yesterday\n"), "{f}");
        for line in out.lines() {
            assert!(
                !line.starts_with("\\connect") || line == "\\connect shop_yesterday",
                "{f}: {line}"
            );
            assert!(!line.contains("DATABASE shop "), "{f}: {line}");
        }
        assert!(!out.contains("CREATE ROLE"), "{f}");
        assert!(out.contains("COPY shop.orders"), "{f}");
        assert_eq!(report.databases, ["shop"]);
    }
}

#[test]
fn a_dump_of_one_database_gets_the_new_database_and_its_settings_again() {
    let dump = b"SET client_encoding = 'UTF8';\nSELECT pg_catalog.set_config('search_path', '', false);\n\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: me\n--\n\nCREATE TABLE public.t (a int);\n\n--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: me\n--\n\nCOPY public.t (a) FROM stdin;\n1\n\\.\n";
    let pick = Pick {
        into: Some("New DB".into()),
        ..Pick::default()
    };
    let (out, _) = run(&pick, dump, 5).unwrap();
    let connect = out.find("\\connect \"New DB\"\n").expect(&out);
    assert!(out.find("CREATE DATABASE \"New DB\";").unwrap() < connect);
    // The session's settings are made again after the \connect.
    assert!(
        out[connect..].contains("set_config('search_path', '', false)"),
        "{out}"
    );
    assert!(out[connect..].contains("COPY public.t (a) FROM stdin;\n1\n\\.\n"));
}

#[test]
fn data_only_and_schema_only() {
    let dump = fixture("pg17-dumpall.sql");
    let pick = Pick {
        content: Content::DataOnly,
        ..tables(&["shop.customers"])
    };
    let (out, _) = run(&pick, &dump, 4096).unwrap();
    assert!(out.contains("COPY shop.customers ("));
    assert!(out.contains("setval('shop.customers_id_seq'"));
    assert!(!out.contains("CREATE"), "{out}");
    assert!(!out.contains("ALTER"), "{out}");
    let pick = Pick {
        content: Content::SchemaOnly,
        ..tables(&["shop.customers"])
    };
    let (out, _) = run(&pick, &dump, 4096).unwrap();
    assert!(out.contains("CREATE TABLE shop.customers"));
    assert!(!out.contains("COPY"), "{out}");
    assert!(!out.contains("setval"), "{out}");
}

#[test]
fn partitions_come_along_with_their_parent_inheritance_children_do_not() {
    let dump = "\\connect db\n\
--\n-- Name: p; Type: TABLE; Schema: public; Owner: me\n--\n\nCREATE TABLE public.p (a int) PARTITION BY LIST (a);\n\n\
--\n-- Name: other; Type: TABLE; Schema: public; Owner: me\n--\n\nCREATE TABLE public.other (a int);\n\n\
--\n-- Name: p1; Type: TABLE; Schema: public; Owner: me\n--\n\nCREATE TABLE public.p1 (a int);\n\n\
--\n-- Name: p11; Type: TABLE; Schema: public; Owner: me\n--\n\nCREATE TABLE public.p11 (a int);\n\n\
--\n-- Name: kid; Type: TABLE; Schema: public; Owner: me\n--\n\nCREATE TABLE public.kid (b int) INHERITS (public.p);\n\n\
--\n-- Name: p11; Type: TABLE ATTACH; Schema: public; Owner: me\n--\n\nALTER TABLE ONLY public.p1 ATTACH PARTITION public.p11 FOR VALUES IN (1);\n\n\
--\n-- Name: p1; Type: TABLE ATTACH; Schema: public; Owner: me\n--\n\nALTER TABLE ONLY public.p ATTACH PARTITION public.p1 FOR VALUES IN (1);\n\n\
--\n-- Data for Name: p11; Type: TABLE DATA; Schema: public; Owner: me\n--\n\nCOPY public.p11 (a) FROM stdin;\n1\n\\.\n\n\
--\n-- Data for Name: other; Type: TABLE DATA; Schema: public; Owner: me\n--\n\nCOPY public.other (a) FROM stdin;\n1\n\\.\n";
    let (out, report) = run(&tables(&["public.p"]), dump.as_bytes(), 3).unwrap();
    let creates: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("CREATE") || l.starts_with("ALTER") || l.starts_with("COPY"))
        .collect();
    assert_eq!(
        creates,
        [
            "CREATE TABLE public.p (a int) PARTITION BY LIST (a);",
            "CREATE TABLE public.p1 (a int);",
            "CREATE TABLE public.p11 (a int);",
            "ALTER TABLE ONLY public.p1 ATTACH PARTITION public.p11 FOR VALUES IN (1);",
            "ALTER TABLE ONLY public.p ATTACH PARTITION public.p1 FOR VALUES IN (1);",
            "COPY public.p11 (a) FROM stdin;",
        ],
        "{out}"
    );
    assert_eq!(
        report.relations,
        [
            Relation::new("public", "p"),
            Relation::new("public", "p1"),
            Relation::new("public", "p11")
        ]
    );
}

#[test]
fn a_pick_that_matches_nothing_names_the_closest() {
    let dump = fixture("pg17-dumpall.sql");
    let e = run(&tables(&["shop.order"]), &dump, 4096)
        .unwrap_err()
        .to_string();
    assert!(e.contains("--table shop.order matches no table"), "{e}");
    assert!(e.contains("did you mean shop.orders?"), "{e}");
    let e = run(&tables(&["public.\"order items\""]), &dump, 4096)
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean public.\"Order Items\"?"), "{e}");
    let pick = Pick {
        databases: vec!["shp".into()],
        ..Pick::default()
    };
    let e = run(&pick, &dump, 4096).unwrap_err().to_string();
    assert!(
        e.contains("--database shp is not in the dump: did you mean shop?"),
        "{e}"
    );
    // With one database picked, a table pick is judged at the end of its definitions,
    // before any of its rows is read.
    let pick = Pick {
        databases: vec!["shop".into()],
        ..tables(&["shop.nope"])
    };
    let mut p = Picker::new(Arc::new(pick));
    let at = dump.windows(9).position(|w| w == b"COPY shop").unwrap();
    let e = p.feed(&dump[..at + 4]).unwrap_err().to_string();
    assert!(
        e.contains("--table shop.nope matches no table in database shop"),
        "{e}"
    );
}

#[test]
fn names_are_read_as_sql_writes_them() {
    let t = |s: &str| Pick::parse_table(s).map(|t| (t.schema, t.name));
    assert_eq!(
        t("public.Orders").unwrap(),
        (Some("public".into()), "orders".into())
    );
    assert_eq!(t("orders").unwrap(), (None, "orders".into()));
    assert_eq!(
        t("\"My.Schema\".\"Order \"\"Items\"\"\"").unwrap(),
        (Some("My.Schema".into()), "Order \"Items\"".into())
    );
    assert_eq!(
        t("über.straße").unwrap(),
        (Some("über".into()), "straße".into())
    );
    assert!(t("a.b.c").is_err());
    assert!(t("").is_err());
    assert!(t("a b").is_err());
    assert!(Pick::parse_schema("\"x\"").is_ok());
    let into_two = Pick {
        databases: vec!["a".into(), "b".into()],
        into: Some("c".into()),
        ..Pick::default()
    };
    assert!(into_two.check().is_err());
}

/// PostgreSQL 18's pg_dumpall: `\restrict` around every database, a table in `postgres`
/// before the picked database, and `STATISTICS DATA` items. A table picked `--into` a new
/// name gets one CREATE DATABASE (the dump's, renamed), its statistics and its index's, and
/// no other table's.
#[test]
fn a_pg_dumpall_of_18_with_statistics_and_objects_in_postgres() {
    let stats = |name: &str| {
        format!(
            "--\n-- Statistics for Name: {name}; Type: STATISTICS DATA; Schema: s; Owner: -\n--\n\n\
             SELECT * FROM pg_catalog.pg_restore_relation_stats(\n\t'version', '180006'::integer,\n\t'schemaname', 's',\n\t'relname', '{name}');\n\n"
        )
    };
    let db = |name: &str, key: &str, body: &str| {
        format!(
            "\\connect {name}\n\n\\restrict {key}\n\nSET statement_timeout = 0;\n\n{body}\\unrestrict {key}\n\n"
        )
    };
    let postgres_body = "--\n-- Name: a; Type: TABLE; Schema: public; Owner: postgres\n--\n\nCREATE TABLE public.a (x int);\n\n";
    let shop_body = format!(
        "--\n-- Name: s; Type: SCHEMA; Schema: -; Owner: postgres\n--\n\nCREATE SCHEMA s;\n\n\
         --\n-- Name: t; Type: TABLE; Schema: s; Owner: postgres\n--\n\nCREATE TABLE s.t (id int);\n\n\
         --\n-- Name: u; Type: TABLE; Schema: s; Owner: postgres\n--\n\nCREATE TABLE s.u (id int);\n\n\
         --\n-- Data for Name: t; Type: TABLE DATA; Schema: s; Owner: postgres\n--\n\nCOPY s.t (id) FROM stdin;\n1\n\\.\n\n\
         --\n-- Data for Name: u; Type: TABLE DATA; Schema: s; Owner: postgres\n--\n\nCOPY s.u (id) FROM stdin;\n2\n\\.\n\n\
         {}{}\
         --\n-- Name: t_id; Type: INDEX; Schema: s; Owner: postgres\n--\n\nCREATE INDEX t_id ON s.t USING btree (id);\n\n\
         {}",
        stats("t"),
        stats("u"),
        stats("t_id")
    );
    let dump = format!(
        "\\restrict G\n\nSET default_transaction_read_only = off;\n\n\\unrestrict G\n\n{}\
         \\restrict C\n\n--\n-- Name: shop; Type: DATABASE; Schema: -; Owner: postgres\n--\n\n\
         CREATE DATABASE shop WITH TEMPLATE = template0;\n\n\\unrestrict C\n{}",
        db("postgres", "P", postgres_body),
        db("shop", "C", &shop_body)
    );
    let pick = Pick {
        databases: vec!["shop".into()],
        into: Some("back".into()),
        ..tables(&["s.t"])
    };
    for step in [1, 7, 1 << 20] {
        let (out, report) = run(&pick, dump.as_bytes(), step).unwrap();
        assert_eq!(out.matches("CREATE DATABASE").count(), 1, "{out}");
        assert!(out.contains("CREATE DATABASE \"back\""), "{out}");
        assert!(!out.contains("public.a"), "{out}");
        assert!(out.contains("'relname', 't')"), "{out}");
        assert!(out.contains("'relname', 't_id')"), "{out}");
        assert!(!out.contains("'relname', 'u')"), "{out}");
        assert!(!out.contains("COPY s.u"), "{out}");
        assert_eq!(report.relations.len(), 1, "{report:?}");
    }
}
