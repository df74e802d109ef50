//! Integration tests of the generated benchmark: every property the brief asks of synth.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kidbench_synth::{
    generate, is_current, read_manifest, target_share, templates, Hardness, Manifest, Pair,
    SpiderSchema, SynthConfig, FAMILIES,
};
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

/// One default generation shared by the tests of this binary.
fn shared() -> &'static (PathBuf, Manifest) {
    static GEN: OnceLock<(PathBuf, Manifest)> = OnceLock::new();
    GEN.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("synth-shared-seed0");
        let m = generate(&dir, &SynthConfig::default()).expect("generation succeeds");
        (dir, m)
    })
}

fn load<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn pairs(split: &str) -> Vec<Pair> {
    load(&shared().0.join(format!("{split}.json")))
}

fn schemas() -> Vec<SpiderSchema> {
    load(&shared().0.join("tables.json"))
}

fn open_ro(dir: &Path, db_id: &str) -> Connection {
    let p = dir
        .join("database")
        .join(db_id)
        .join(format!("{db_id}.sqlite"));
    Connection::open_with_flags(&p, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn same_seed_is_byte_identical_and_other_seed_differs() {
    let (dir, _) = shared();
    let again = tempfile::tempdir().expect("tempdir");
    generate(again.path(), &SynthConfig::default()).expect("second generation");
    let (a, b) = (tree(dir), tree(again.path()));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same file set"
    );
    for (k, v) in &a {
        assert!(
            v == &b[k],
            "{k} differs between two generations with seed 0"
        );
    }

    let other = tempfile::tempdir().expect("tempdir");
    let cfg = SynthConfig {
        seed: 1,
        ..SynthConfig::default()
    };
    generate(other.path(), &cfg).expect("seed 1 generation");
    let c = tree(other.path());
    assert_ne!(
        a["train.json"], c["train.json"],
        "seed 1 train.json equals seed 0"
    );
    assert_ne!(
        a["dev.json"], c["dev.json"],
        "seed 1 dev.json equals seed 0"
    );
    let differing = a
        .iter()
        .filter(|(k, v)| k.ends_with(".sqlite") && c.get(*k) != Some(v))
        .count();
    assert!(differing > 0, "no database differs between seeds");
}

#[test]
fn counts_and_table_ranges() {
    let s = schemas();
    assert!(s.len() >= 25, "{} schemas", s.len());
    for sc in &s {
        let n = sc.table_names_original.len();
        assert!((3..=8).contains(&n), "{}: {n} tables", sc.db_id);
    }
    let (train, dev) = (pairs("train"), pairs("dev"));
    assert!(train.len() >= 8000, "{} train pairs", train.len());
    assert!(dev.len() >= 1000, "{} dev pairs", dev.len());
    let m = &shared().1;
    assert_eq!(m.splits["train"].pairs, train.len());
    assert_eq!(m.splits["dev"].pairs, dev.len());
    assert_eq!(m.databases.len(), s.len());
    // Rows: tens to a few hundred per table.
    let (dir, _) = shared();
    for sc in &s {
        let conn = open_ro(dir, &sc.db_id);
        for t in &sc.table_names_original {
            let n: i64 = conn
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .expect("count");
            assert!((5..=400).contains(&n), "{}.{t}: {n} rows", sc.db_id);
        }
    }
}

#[test]
fn split_by_database() {
    let train: BTreeSet<String> = pairs("train").into_iter().map(|p| p.db_id).collect();
    let dev: BTreeSet<String> = pairs("dev").into_iter().map(|p| p.db_id).collect();
    assert!(
        train.is_disjoint(&dev),
        "shared: {:?}",
        train.intersection(&dev)
    );
    assert!(dev.len() >= 5, "{} dev databases", dev.len());
    let all: BTreeSet<String> = schemas().into_iter().map(|s| s.db_id).collect();
    assert!(
        train.union(&dev).all(|d| all.contains(d)),
        "pair on unknown db"
    );
}

/// The re-skins borrow the dev schemas' words (a from-scratch model's only way to know them),
/// never a dev schema itself or a dev question.
#[test]
fn dev_words_reach_train_but_dev_schemas_and_questions_do_not() {
    let dev_ids: BTreeSet<String> = pairs("dev").into_iter().map(|p| p.db_id).collect();
    let tables = |s: &SpiderSchema| -> BTreeSet<String> {
        s.table_names_original
            .iter()
            .map(|t| t.to_lowercase())
            .collect()
    };
    let (dev, train): (Vec<SpiderSchema>, Vec<SpiderSchema>) = schemas()
        .into_iter()
        .partition(|s| dev_ids.contains(&s.db_id));
    let train_tables: BTreeSet<String> = train.iter().flat_map(tables).collect();
    let missing: Vec<String> = dev
        .iter()
        .flat_map(tables)
        .filter(|t| !train_tables.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "dev table names never used in train: {missing:?}"
    );
    for d in &dev {
        for t in &train {
            assert_ne!(
                tables(d),
                tables(t),
                "train {} copies dev {}",
                t.db_id,
                d.db_id
            );
        }
    }
    let train_q: HashSet<String> = pairs("train").into_iter().map(|p| p.question).collect();
    for p in pairs("dev") {
        assert!(
            !train_q.contains(&p.question),
            "dev question in train: {}",
            p.question
        );
    }
}

#[test]
fn no_duplicate_questions() {
    let mut seen = HashSet::new();
    for p in pairs("train").into_iter().chain(pairs("dev")) {
        assert!(
            seen.insert((p.db_id.clone(), p.question.clone())),
            "duplicate: {} / {}",
            p.db_id,
            p.question
        );
    }
}

#[test]
fn gold_queries_execute_and_mostly_non_empty() {
    let (dir, _) = shared();
    for split in ["train", "dev"] {
        let ps = pairs(split);
        let mut conns: HashMap<String, Connection> = HashMap::new();
        let mut non_empty = 0usize;
        for p in &ps {
            let conn = conns
                .entry(p.db_id.clone())
                .or_insert_with(|| open_ro(dir, &p.db_id));
            let mut stmt = conn
                .prepare(&p.query)
                .unwrap_or_else(|e| panic!("{}: {} -> {e}", p.db_id, p.query));
            let mut rows = stmt.query([]).expect("query");
            if rows.next().expect("step").is_some() {
                non_empty += 1;
            }
        }
        let share = non_empty as f64 / ps.len() as f64;
        assert!(
            share >= 0.9,
            "{split}: only {:.1}% non-empty",
            100.0 * share
        );
    }
}

#[test]
fn hardness_mix_close_to_spider_dev() {
    for split in ["train", "dev"] {
        let ps = pairs(split);
        for h in Hardness::ALL {
            let share = ps.iter().filter(|p| p.hardness == h).count() as f64 / ps.len() as f64;
            assert!(
                (share - target_share(h)).abs() <= 0.03,
                "{split} {}: {:.1}% vs target {:.0}%",
                h.as_str(),
                100.0 * share,
                100.0 * target_share(h)
            );
        }
    }
}

#[test]
fn every_family_and_template_is_used_with_its_declared_level() {
    let info: HashMap<&str, (&str, Hardness)> = templates()
        .into_iter()
        .map(|t| (t.name, (t.family, t.level)))
        .collect();
    for split in ["train", "dev"] {
        let ps = pairs(split);
        let mut fams = BTreeSet::new();
        let mut temps = BTreeSet::new();
        for p in &ps {
            let (fam, level) = info
                .get(p.template.as_str())
                .unwrap_or_else(|| panic!("unknown template {}", p.template));
            assert_eq!(*level, p.hardness, "{}: {}", p.template, p.query);
            fams.insert(*fam);
            temps.insert(p.template.as_str());
        }
        for f in FAMILIES {
            assert!(fams.contains(f), "{split}: family {f} unused");
        }
        if split == "train" {
            for t in info.keys() {
                assert!(temps.contains(t), "train: template {t} unused");
            }
        }
    }
}

fn spider_type(decl: &str) -> &'static str {
    match decl {
        "INTEGER" | "REAL" => "number",
        "TEXT" => "text",
        "DATE" => "time",
        _ => "others",
    }
}

#[test]
fn tables_json_matches_sqlite_schema_and_foreign_keys_hold() {
    let (dir, _) = shared();
    for sc in schemas() {
        let conn = open_ro(dir, &sc.db_id);
        let n_cols = sc.column_names_original.len();
        assert_eq!(sc.column_names.len(), n_cols);
        assert_eq!(sc.column_types.len(), n_cols);
        assert_eq!(sc.column_names_original[0], (-1, "*".to_owned()));
        let mut idx = 1usize;
        let mut global: HashMap<(String, String), usize> = HashMap::new();
        for (ti, t) in sc.table_names_original.iter().enumerate() {
            let mut stmt = conn
                .prepare(&format!("PRAGMA table_info({t})"))
                .expect("pragma");
            let cols: Vec<(String, String, i64)> = stmt
                .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(5)?)))
                .expect("table_info")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert!(!cols.is_empty(), "{}: table {t} missing", sc.db_id);
            for (name, decl, pk) in cols {
                let (owner, orig) = &sc.column_names_original[idx];
                assert_eq!(
                    (*owner, orig.as_str()),
                    (ti as i64, name.as_str()),
                    "{}",
                    sc.db_id
                );
                assert_eq!(
                    sc.column_types[idx],
                    spider_type(&decl),
                    "{}.{t}.{name}",
                    sc.db_id
                );
                assert_eq!(
                    pk == 1,
                    sc.primary_keys.contains(&idx),
                    "{}.{t}.{name} primary key",
                    sc.db_id
                );
                global.insert((t.clone(), name), idx);
                idx += 1;
            }
        }
        assert_eq!(idx, n_cols, "{}: extra columns in tables.json", sc.db_id);

        // Declared foreign keys == tables.json foreign_keys, and every value resolves.
        let mut declared = BTreeSet::new();
        for t in &sc.table_names_original {
            let mut stmt = conn
                .prepare(&format!("PRAGMA foreign_key_list({t})"))
                .expect("pragma");
            let fks: Vec<(String, String, String)> = stmt
                .query_map([], |r| Ok((r.get(2)?, r.get(3)?, r.get(4)?)))
                .expect("fk list")
                .collect::<Result<_, _>>()
                .expect("rows");
            for (parent, from, to) in fks {
                let c = global[&(t.clone(), from.clone())];
                let p = global[&(parent.clone(), to.clone())];
                declared.insert([c, p]);
                let dangling: i64 = conn
                    .query_row(
                        &format!(
                            "SELECT count(*) FROM {t} WHERE {from} NOT IN (SELECT {to} FROM {parent})"
                        ),
                        [],
                        |r| r.get(0),
                    )
                    .expect("dangling check");
                assert_eq!(
                    dangling, 0,
                    "{}: {t}.{from} has dangling references",
                    sc.db_id
                );
            }
        }
        let listed: BTreeSet<[usize; 2]> = sc.foreign_keys.iter().copied().collect();
        assert_eq!(declared, listed, "{}: foreign keys", sc.db_id);
        assert!(!listed.is_empty(), "{}: no foreign keys", sc.db_id);
    }
}

/// Quoted strings (LIKE wildcards removed) and numbers compared in WHERE/HAVING.
fn sql_literals(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            let mut s = String::new();
            while let Some(d) = chars.next() {
                if d == '\'' {
                    if chars.peek() == Some(&'\'') {
                        s.push('\'');
                        chars.next();
                        continue;
                    }
                    break;
                }
                s.push(d);
            }
            out.push(s.trim_matches('%').to_owned());
            rest.push_str(" _ ");
        } else {
            rest.push(c);
        }
    }
    let toks: Vec<&str> = rest.split_whitespace().collect();
    for w in toks.windows(2) {
        let is_cmp = matches!(
            w[0],
            "=" | "!=" | ">" | "<" | ">=" | "<=" | "BETWEEN" | "AND"
        );
        if is_cmp && w[1].parse::<f64>().is_ok() {
            out.push(w[1].to_owned());
        }
    }
    out
}

#[test]
fn where_literals_appear_in_the_question() {
    assert_eq!(
        sql_literals(
            "SELECT a FROM t WHERE b LIKE '%Sun%' AND c BETWEEN 1.5 AND 9 AND d = 'O''Neil'"
        ),
        vec!["Sun", "O'Neil", "1.5", "9"]
    );
    for split in ["train", "dev"] {
        for p in pairs(split) {
            let words: HashSet<&str> = p
                .question
                .split_whitespace()
                .map(|w| w.trim_end_matches(['.', ',', '?', '!']))
                .collect();
            for lit in sql_literals(&p.query) {
                let ok = if lit.parse::<f64>().is_ok() {
                    words.contains(lit.as_str())
                } else {
                    p.question.contains(&lit)
                };
                assert!(
                    ok,
                    "{split}: literal {lit:?} not in question {:?} ({})",
                    p.question, p.query
                );
            }
        }
    }
}

#[test]
fn queries_are_moderate_length_and_spider_style() {
    for p in pairs("train").into_iter().chain(pairs("dev")) {
        assert!(p.query.starts_with("SELECT "), "{}", p.query);
        assert!(!p.query.contains(';'), "{}", p.query);
        let toks = p.query.split_whitespace().count();
        assert!(toks <= 60, "{toks} tokens: {}", p.query);
    }
}

#[test]
fn manifest_hashes_and_is_current() {
    let (dir, m) = shared();
    assert_eq!(read_manifest(dir).expect("manifest"), *m);
    assert_eq!(m.benchmark, "synth");
    for (rel, hash) in &m.files {
        let bytes = std::fs::read(dir.join(rel)).expect("listed file exists");
        assert_eq!(hex::encode(Sha256::digest(&bytes)), *hash, "{rel}");
    }
    assert!(m.files.contains_key("tables.json") && m.files.contains_key("train.json"));
    assert_eq!(
        m.files.keys().filter(|k| k.ends_with(".sqlite")).count(),
        m.databases.len()
    );
    assert!(is_current(dir, &SynthConfig::default()));
    let other = SynthConfig {
        seed: 7,
        ..SynthConfig::default()
    };
    assert!(!is_current(dir, &other));
    let empty = tempfile::tempdir().expect("tempdir");
    assert!(!is_current(empty.path(), &SynthConfig::default()));
}

/// The validation split: whole train domains held out (a domain with all its re-skins), the
/// rest of train beside it, nothing lost or shared.
#[test]
fn the_validation_split_holds_out_whole_train_domains() {
    use kidbench_synth::variants::base_domain;
    let (train, val, rest) = (pairs("train"), pairs("val"), pairs("train-val"));
    assert_eq!(val.len() + rest.len(), train.len());
    let val_domains: BTreeSet<&str> = val.iter().map(|p| base_domain(&p.db_id)).collect();
    let rest_domains: BTreeSet<&str> = rest.iter().map(|p| base_domain(&p.db_id)).collect();
    assert!(!val_domains.is_empty());
    assert!(val_domains.is_disjoint(&rest_domains), "{val_domains:?}");
    // about a ninth of the train domains, and of its questions
    let share = val.len() as f64 / train.len() as f64;
    assert!((0.05..0.2).contains(&share), "validation share {share:.3}");
    let dev: Vec<Pair> = pairs("dev");
    assert!(val.iter().all(|p| !dev.iter().any(|d| d.db_id == p.db_id)));
}

/// synth-syn: the dev questions, each with the same SQL, most with a schema word replaced, and
/// every value the SQL quotes still in the question.
#[test]
fn syn_questions_keep_sql_and_values_and_change_schema_words() {
    let (dev, syn) = (pairs("dev"), pairs("dev-syn"));
    assert_eq!(dev.len(), syn.len());
    let mut changed = 0;
    for (d, s) in dev.iter().zip(&syn) {
        assert_eq!((&d.db_id, &d.query), (&s.db_id, &s.query));
        if d.question != s.question {
            changed += 1;
        }
        for lit in kidbench_synth::variants::sql_literals(&d.query) {
            if d.question.contains(&lit) {
                assert!(
                    s.question.contains(&lit),
                    "{} -> {}",
                    d.question,
                    s.question
                );
            }
        }
    }
    // a table or column word is in nearly every question ("How many museums are there?")
    assert!(
        changed as f64 > 0.8 * dev.len() as f64,
        "{changed} of {} changed",
        dev.len()
    );
}

/// synth-realistic: dev questions that named the column of a quoted value, without it.
#[test]
fn realistic_questions_no_longer_name_the_column_of_their_value() {
    let (dev, real) = (pairs("dev"), pairs("dev-realistic"));
    assert!(real.len() >= 100, "only {} realistic questions", real.len());
    for r in &real {
        // its dev original: a longer question of the same SQL (several may share the SQL)
        let originals: Vec<&Pair> = dev
            .iter()
            .filter(|d| d.query == r.query && d.db_id == r.db_id)
            .collect();
        assert!(
            originals
                .iter()
                .any(|d| r.question.len() < d.question.len()),
            "no longer dev question for {}",
            r.question
        );
        for lit in kidbench_synth::variants::sql_literals(&r.query) {
            if originals.iter().all(|d| d.question.contains(&lit)) {
                assert!(r.question.contains(&lit), "{} lost '{lit}'", r.question);
            }
        }
        assert!(!r.question.contains(" whose name is "), "{}", r.question);
    }
}
