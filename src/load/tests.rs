//! The loader's planning and scheduling, without PostgreSQL: the operations the planner makes
//! of real pg_dumpall output and of each case that falls back, and the schedule's lock rule
//! under every order of completions.

use proptest::prelude::*;

use super::plan::{Op, Planner};
use super::schedule::Schedule;
use super::sql::Locks;
use crate::split::Splitter;

/// The planner's operations for `dump`, one line each.
fn plan(dump: &[u8], on_error_stop: bool) -> crate::error::Result<(Vec<String>, Planner)> {
    let mut items = Vec::new();
    let mut sp = Splitter::new();
    sp.feed(dump, &mut |i| items.push(i));
    sp.finish(&mut |i| items.push(i));
    let mut p = Planner::new("the target".into(), on_error_stop, 2);
    let mut out = Vec::new();
    for i in items {
        p.item(i, &mut out)?;
    }
    p.finish(&mut out);
    // The end of a table's COPY matters only to a two-pass load (tested below).
    let ops = out
        .iter()
        .filter(|o| !matches!(o, Op::TableEnd(_)))
        .map(describe)
        .collect();
    Ok((ops, p))
}

fn first_line(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.lines().next().unwrap_or_default().to_string()
}

fn describe(op: &Op) -> String {
    match op {
        Op::Data(u) => match &u.table {
            Some(t) => format!("data {t} {}", u.rows.as_ref().map_or(0, |r| r.len())),
            None => format!("data {}", first_line(&u.text)),
        },
        Op::Lane(u) => format!("lane {}", first_line(&u.text)),
        Op::Serial(u) => format!("serial {}", first_line(&u.text)),
        Op::SerialCopy(u) => format!("serial copy {}", first_line(&u.text)),
        Op::Raw { bytes, done } => format!(
            "raw{} {}",
            if *done { " end" } else { "" },
            first_line(bytes)
        ),
        Op::Passthrough(_) => "passthrough".into(),
        Op::DataEnd { pre } => format!("data end{}", if *pre { " (none)" } else { "" }),
        Op::Post(p) => format!(
            "post: {} index, {} attach, {} fk, {} rest",
            p.index.len(),
            p.attach.len(),
            p.fk.len(),
            p.rest.len()
        ),
        Op::Close => "close".into(),
        Op::Database(d) => format!("database {d}"),
        Op::TableEnd(t) => format!("table end {t}"),
    }
}

const FIXTURES: [&[u8]; 4] = [
    include_bytes!("../../tests/fixtures/pgdump/pg13-dumpall.sql"),
    include_bytes!("../../tests/fixtures/pgdump/pg14-dumpall.sql"),
    include_bytes!("../../tests/fixtures/pgdump/pg16-dumpall.sql"),
    include_bytes!("../../tests/fixtures/pgdump/pg17-dumpall.sql"),
];

#[test]
fn the_fixture_dumps_plan_per_database_schema_data_then_post_data() {
    for dump in FIXTURES {
        let (ops, p) = plan(dump, false).unwrap();
        assert!(p.phases.fallback.is_none(), "{:?}", p.phases.fallback);
        assert!(p.phases.copy_chunks > 0 && p.phases.parallel_items > 0);
        // Each database: its \connect, then no data before its schema, and its post-data
        // only after its last data unit, then its connections closed.
        let mut seen_db = 0;
        let mut in_db = false;
        let (mut data, mut post) = (false, false);
        for op in &ops {
            if op.starts_with("database ") {
                seen_db += 1;
                in_db = true;
                (data, post) = (false, false);
            } else if op.starts_with("data ") && !op.starts_with("data end") {
                assert!(!post, "data after the post-data: {ops:#?}");
                data = true;
            } else if op.starts_with("post:") {
                post = true;
            } else if op == "close" {
                in_db = false;
            }
        }
        assert!(seen_db >= 2, "{ops:#?}");
        assert!(!in_db && data);
        assert_eq!(ops.last().map(String::as_str), Some("close"));
    }
}

const HEAD: &str = "--\n-- Name: t; Type: TABLE; Schema: public; Owner: me\n--\n\nCREATE TABLE public.t (a int);\n\n\
                    --\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: me\n--\n\n\
                    COPY public.t (a) FROM stdin;\n1\n2\n\\.\n\n";

#[test]
fn a_copy_chunk_names_its_table_and_sequence_values_take_the_lane() {
    let dump = format!(
        "{HEAD}--\n-- Name: s; Type: SEQUENCE SET; Schema: public; Owner: me\n--\n\n\
         SELECT pg_catalog.setval('public.s', 3, true);\n"
    );
    let (ops, _) = plan(dump.as_bytes(), false).unwrap();
    assert_eq!(
        ops,
        [
            "serial CREATE TABLE public.t (a int);",
            "data public.t 4",
            "lane SELECT pg_catalog.setval('public.s', 3, true);",
            "data end",
            "close"
        ]
    );
}

#[test]
fn an_unknown_meta_command_falls_back_to_one_connection() {
    let dump = format!("{HEAD}\\set x 1\nSELECT 1;\n");
    let (ops, p) = plan(dump.as_bytes(), false).unwrap();
    assert_eq!(
        &ops[..3],
        [
            "serial CREATE TABLE public.t (a int);",
            "data public.t 4",
            "passthrough"
        ]
    );
    assert_eq!(&ops[3..5], ["raw \\set x 1", "raw SELECT 1;"]);
    assert!(p
        .phases
        .fallback
        .unwrap()
        .contains("the meta-command `\\set x 1`"));
}

#[test]
fn a_transaction_left_open_across_items_falls_back() {
    let dump = format!(
        "BEGIN;\n{HEAD}--\n-- Name: i; Type: INDEX; Schema: public; Owner: me\n--\n\n\
         CREATE INDEX i ON public.t USING btree (a);\nCOMMIT;\n"
    );
    let (ops, p) = plan(dump.as_bytes(), false).unwrap();
    assert!(ops.contains(&"passthrough".to_string()), "{ops:#?}");
    assert!(p
        .phases
        .fallback
        .unwrap()
        .contains("a transaction left open"));
    // Nothing was loaded in parallel: the COPY ran where psql would have run it.
    assert!(
        !ops.iter().any(|o| o.starts_with("data public")),
        "{ops:#?}"
    );
}

#[test]
fn restrict_is_ours_and_meta_commands_inside_it_are_refused() {
    let dump = format!("\\restrict KEY1\n{HEAD}\\echo hi\n\\unrestrict KEY1\n");
    let (ops, p) = plan(dump.as_bytes(), false).unwrap();
    assert!(
        !ops.iter()
            .any(|o| o.contains("restrict") || o == "passthrough"),
        "{ops:#?}"
    );
    assert_eq!(p.refused.len(), 1);
    assert!(p.refused[0].contains("\\echo hi"));
    // With --on-error-stop the refusal stops the restore.
    assert!(plan(dump.as_bytes(), true).is_err());
}

#[test]
fn post_data_is_kept_until_the_data_ends_and_classified() {
    let dump = format!(
        "{HEAD}--\n-- Name: t_pkey; Type: CONSTRAINT; Schema: public; Owner: me\n--\n\n\
         ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (a);\n\n\
         --\n-- Name: i; Type: INDEX ATTACH; Schema: public; Owner: me\n--\n\n\
         ALTER INDEX public.p_pkey ATTACH PARTITION public.t_pkey;\n\n\
         --\n-- Name: f; Type: FK CONSTRAINT; Schema: public; Owner: me\n--\n\n\
         ALTER TABLE ONLY public.u\n    ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES public.t(a);\n\n\
         --\n-- Name: g; Type: TRIGGER; Schema: public; Owner: me\n--\n\n\
         CREATE TRIGGER g AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION f();\n"
    );
    let (ops, p) = plan(dump.as_bytes(), false).unwrap();
    assert_eq!(ops[2], "post: 1 index, 1 attach, 1 fk, 1 rest", "{ops:#?}");
    assert_eq!(p.phases.parallel_items, 2);
}

#[test]
fn an_unknown_post_data_item_runs_alone_at_its_place() {
    let dump = format!(
        "{HEAD}--\n-- Name: i; Type: INDEX; Schema: public; Owner: me\n--\n\n\
         CREATE INDEX i ON public.t USING btree (a);\n\n\
         --\n-- Name: x; Type: SOMETHING NEW; Schema: public; Owner: me\n--\n\nSELECT 1;\n\n\
         --\n-- Name: j; Type: INDEX; Schema: public; Owner: me\n--\n\n\
         CREATE INDEX j ON public.t USING btree (a);\n"
    );
    let (ops, _) = plan(dump.as_bytes(), false).unwrap();
    assert_eq!(
        &ops[2..],
        [
            "post: 1 index, 0 attach, 0 fk, 0 rest",
            "serial SELECT 1;",
            "post: 1 index, 0 attach, 0 fk, 0 rest",
            "close"
        ]
    );
}

#[test]
fn settings_travel_with_each_unit() {
    let dump = format!("SET search_path = x;\n{HEAD}");
    let mut items = Vec::new();
    let mut sp = Splitter::new();
    sp.feed(dump.as_bytes(), &mut |i| items.push(i));
    sp.finish(&mut |i| items.push(i));
    let mut p = Planner::new("t".into(), false, 2);
    let mut out = Vec::new();
    for i in items {
        p.item(i, &mut out).unwrap();
    }
    let Some(Op::Data(u)) = out.iter().find(|o| matches!(o, Op::Data(_))) else {
        panic!("no data unit: {out:?}")
    };
    assert_eq!(u.before.len(), 1);
    assert_eq!(u.before[0].1, b"SET search_path = x;\n");
}

fn locks_of(spec: (u8, bool)) -> Locks {
    // Tables a, b, c, d by bits; `shared` only for a one-table item.
    let tables: Vec<String> = (0..4)
        .filter(|b| spec.0 & (1 << b) != 0)
        .map(|b| ((b'a' + b) as char).to_string())
        .collect();
    if tables.is_empty() {
        return Locks::All;
    }
    Locks::Tables {
        shared: spec.1 && tables.len() == 1,
        tables,
    }
}

proptest! {
    /// Any order of completions drains the schedule, never runs two conflicting items at
    /// once, and never lets an item overtake an earlier one it conflicts with (the class of
    /// the lost wakeup of a4c0342: an end that is never seen leaves items waiting forever).
    #[test]
    fn any_order_of_completions_drains_the_schedule_without_conflicts(
        items in proptest::collection::vec((0u8..2, (0u8..16, any::<bool>()), 0u64..4), 1..24),
        picks in proptest::collection::vec(any::<usize>(), 64),
        idle in 1usize..5,
    ) {
        let mut s = Schedule::default();
        for (k, (group, spec, weight)) in items.iter().enumerate() {
            s.push(*group, locks_of(*spec), *weight, k);
        }
        let mut running: Vec<(super::schedule::Ticket, usize)> = Vec::new();
        let mut started = Vec::new();
        let mut round = 0;
        while !s.is_empty() {
            while running.len() < idle {
                let Some((t, k)) = s.next() else { break };
                let l = locks_of(items[k].1);
                for (_, other) in &running {
                    prop_assert!(!l.conflicts(&locks_of(items[*other].1)), "{k} beside {other}");
                }
                // No earlier conflicting item of its group or an earlier group is still to start.
                started.push(k);
                running.push((t, k));
            }
            prop_assert!(!running.is_empty(), "items left and nothing can run");
            prop_assert_eq!(s.running_locks().count(), running.len());
            let i = picks[round % picks.len()] % running.len();
            round += 1;
            let (t, _) = running.remove(i);
            s.finished(t);
        }
        prop_assert_eq!(started.len(), items.len());
        // Of two items that conflict, the one that goes first by the rule started first.
        let key = |k: usize| (items[k].0, std::cmp::Reverse(items[k].2), k);
        for (x, &a) in started.iter().enumerate() {
            for &b in &started[x + 1..] {
                if locks_of(items[a].1).conflicts(&locks_of(items[b].1)) {
                    prop_assert!(key(a) < key(b), "{a} started before {b}");
                }
            }
        }
    }
}

/// The first read's layout of `dump`.
fn layout(dump: &[u8]) -> std::sync::Arc<super::Layout> {
    let mut p = super::Prescan::new("the target".into(), false, 2);
    p.write(dump).unwrap();
    p.finish().unwrap().1
}

/// Two tables with data, a key on each, an index on `u` and a foreign key from `u` to `t`.
fn two_tables() -> String {
    let h = |name: &str, kind: &str| {
        format!("--\n-- Name: {name}; Type: {kind}; Schema: public; Owner: me\n--\n\n")
    };
    format!(
        "{}CREATE TABLE public.t (a int);\n\n{}CREATE TABLE public.u (a int, t int);\n\n\
         {}COPY public.t (a) FROM stdin;\n1\n2\n\\.\n\n{}COPY public.u (a, t) FROM stdin;\n1\t1\n\\.\n\n\
         {}ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (a);\n\n\
         {}CREATE INDEX u_t ON public.u USING btree (t);\n\n\
         {}ALTER TABLE ONLY public.u\n    ADD CONSTRAINT u_t_fkey FOREIGN KEY (t) REFERENCES public.t(a);\n\n\
         {}CREATE TRIGGER g AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION f();\n",
        h("t", "TABLE"),
        h("u", "TABLE"),
        h("t", "TABLE DATA"),
        h("u", "TABLE DATA"),
        h("t t_pkey", "CONSTRAINT"),
        h("u_t", "INDEX"),
        h("u u_t_fkey", "FK CONSTRAINT"),
        h("t g", "TRIGGER"),
    )
}

#[test]
fn the_first_read_keeps_each_databases_post_data_with_exact_weights() {
    let l = layout(two_tables().as_bytes());
    assert_eq!(l.dbs.len(), 1);
    let post = l.dbs[0].post.as_ref().expect("early");
    assert_eq!(
        (post.index.len(), post.fk.len(), post.rest.len()),
        (2, 1, 1)
    );
    // t's rows are "1\n2\n": 4 bytes; u's "1\t1\n": 4.
    assert_eq!(post.index[0].1, 4);
    assert_eq!(l.data_bytes(), 8);
    // The fixtures: every database with indexes gets them early, none falls back.
    for dump in FIXTURES {
        let l = layout(dump);
        let (early, all) = l.early_databases();
        assert!(early > 0 && early == all, "{early} of {all}");
    }
    // INDEX ATTACH and an unknown item keep one pass for their database, and say why.
    let attach = format!(
        "{HEAD}--\n-- Name: i; Type: INDEX ATTACH; Schema: public; Owner: me\n--\n\n\
         ALTER INDEX public.p_pkey ATTACH PARTITION public.t_pkey;\n"
    );
    let l = layout(attach.as_bytes());
    assert!(l.dbs[0].post.is_none() && l.dbs[0].single.is_some());
    let index = "--\n-- Name: i; Type: INDEX; Schema: public; Owner: me\n--\n\n\
                 CREATE INDEX i ON public.t USING btree (a);\n\n";
    let unknown =
        "--\n-- Name: x; Type: SOMETHING NEW; Schema: public; Owner: me\n--\n\nSELECT 1;\n\n";
    // Before the indexes: they could not start before it.
    let before = format!("{HEAD}{unknown}{index}");
    assert!(layout(before.as_bytes()).dbs[0].post.is_none());
    // After them: they start early, it runs after them, as in one pass.
    let after = format!("{HEAD}{index}{unknown}");
    assert_eq!(
        layout(after.as_bytes()).dbs[0]
            .post
            .as_ref()
            .unwrap()
            .index
            .len(),
        1
    );
}

#[test]
fn a_tables_post_data_is_released_when_its_rows_are_in_and_a_foreign_key_when_both_are() {
    use super::early::Early;
    let l = layout(two_tables().as_bytes());
    let mut e = Early::new(l.dbs[0].post.as_ref().unwrap(), 2);
    let t = "\"public\".\"t\"".to_string();
    let u = "\"public\".\"u\"".to_string();
    // Nothing before a COPY ended.
    assert!(!e.release(|_| false));
    assert!(e.schedule.next().is_none());
    // t's COPY ended but a chunk is still in flight: not yet.
    e.table_end(t.clone());
    assert!(!e.release(|x| x == t));
    // Now its key may run, and only it: the foreign key waits for u.
    assert!(e.release(|_| false));
    let (k1, job) = e.schedule.next().unwrap();
    assert!(String::from_utf8_lossy(&job.3.text).contains("t_pkey"));
    assert!(e.schedule.next().is_none());
    e.table_end(u);
    assert!(e.release(|_| false));
    // u's index runs beside t's key; the foreign key waits for both.
    let (k2, job) = e.schedule.next().unwrap();
    assert!(String::from_utf8_lossy(&job.3.text).contains("u_t "));
    assert!(e.schedule.next().is_none());
    e.schedule.finished(k1);
    assert!(e.schedule.next().is_none());
    e.schedule.finished(k2);
    let (k3, job) = e.schedule.next().unwrap();
    assert!(String::from_utf8_lossy(&job.3.text).contains("FOREIGN KEY"));
    e.schedule.finished(k3);
    assert!(e.is_done());
}

#[test]
fn an_item_on_a_table_without_a_copy_waits_for_the_end_of_the_data() {
    use super::early::Early;
    let l = layout(two_tables().as_bytes());
    let mut e = Early::new(l.dbs[0].post.as_ref().unwrap(), 2);
    e.table_end("\"public\".\"other\"".into());
    assert!(!e.release(|_| false));
    e.release_all();
    let mut n = 0;
    while let Some((k, _)) = e.schedule.next() {
        e.schedule.finished(k);
        n += 1;
    }
    assert_eq!(n, 3);
    assert!(e.is_done());
}

#[test]
fn the_first_difference_between_two_reads_is_named() {
    let a = layout(two_tables().as_bytes());
    let changed = two_tables().replace(
        "u_t ON public.u USING btree (t)",
        "u_t ON public.u USING hash (t)",
    );
    let b = layout(changed.as_bytes());
    let (pa, pb) = (
        a.dbs[0].post.as_ref().unwrap(),
        b.dbs[0].post.as_ref().unwrap(),
    );
    assert!(super::early::first_difference(pa, pa).is_none());
    let d = super::early::first_difference(pa, pb).unwrap();
    assert!(
        d.contains("index or constraint 2") && d.contains("hash"),
        "{d}"
    );
    let none = super::early::first_difference(pa, &Default::default()).unwrap();
    assert!(none.contains("nothing in the second"), "{none}");
}
