//! CodeS prompts on Spider dev databases: snapshots inspected by hand, plus independent checks of
//! the format against `tables.json`.
//!
//! `KIDBENCH_BLESS=1 cargo test -p kidbench-sql --test prompt` rewrites the snapshots under
//! `tests/data/prompts/`; inspect the diff before committing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use kidbench_sql::prompt::{DatabasePrompter, PromptOptions};
use kidbench_sql::schema::{load_tables_json_map, schema_from_sqlite, Schema};
use serde_json::Value as J;

/// The Spider folder, or `None`: the test then returns (`kidbench_sql::testdata` says loudly
/// that it skipped, and fails instead under `CI=true`).
fn spider_dir(test: &str) -> Option<PathBuf> {
    kidbench_sql::testdata::spider(test)
}

fn db_path(spider: &Path, db_id: &str) -> PathBuf {
    spider
        .join("database")
        .join(db_id)
        .join(format!("{db_id}.sqlite"))
}

fn schemas(spider: &Path) -> BTreeMap<String, Schema> {
    load_tables_json_map(spider.join("tables.json")).unwrap_or_else(|e| panic!("{e}"))
}

fn prompter(spider: &Path, schema: &Schema) -> DatabasePrompter {
    DatabasePrompter::new(
        db_path(spider, &schema.db_id),
        schema,
        PromptOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn dev(spider: &Path) -> Vec<J> {
    let path = spider.join("dev.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let v: J = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    v.as_array().expect("dev.json is a list").clone()
}

/// (database, dev question index) of each snapshot.
const SNAPSHOTS: &[(&str, usize)] = &[
    ("concert_singer", 4),
    ("pets_1", 53),
    ("car_1", 114),
    ("world_1", 746),
    ("flight_2", 211),
];

fn snapshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/prompts")
}

#[test]
fn prompts_match_snapshots() {
    let Some(spider) = spider_dir("prompts_match_snapshots") else {
        return;
    };
    let schemas = schemas(&spider);
    let dev = dev(&spider);
    let bless = std::env::var("KIDBENCH_BLESS").is_ok_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for &(db_id, index) in SNAPSHOTS {
        let ex = &dev[index];
        assert_eq!(ex["db_id"].as_str(), Some(db_id), "dev[{index}]");
        let question = ex["question"].as_str().expect("question is a string");
        let prompt = prompter(&spider, &schemas[db_id]).prompt(question);
        let file = snapshot_dir().join(format!("{db_id}.txt"));
        if bless {
            std::fs::create_dir_all(snapshot_dir()).expect("create snapshot dir");
            std::fs::write(&file, &prompt).expect("write snapshot");
            continue;
        }
        let expected = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "cannot read snapshot {} ({e}); run with KIDBENCH_BLESS=1",
                file.display()
            )
        });
        if expected != prompt {
            mismatches.push(format!(
                "{}:\n--- expected\n{expected}\n--- got\n{prompt}",
                file.display()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "prompts differ from snapshots (KIDBENCH_BLESS=1 rewrites them):\n{}",
        mismatches.join("\n")
    );
}

/// The `matched contents :` lines of a prompt.
fn matched_lines(prompt: &str) -> Vec<String> {
    let after = prompt
        .split_once("matched contents :\n")
        .expect("matched contents section")
        .1;
    let mut lines: Vec<String> = after.lines().map(str::to_string).collect();
    lines.pop(); // the question
    lines
}

#[test]
fn matched_contents_find_question_values() {
    let Some(spider) = spider_dir("matched_contents_find_question_values") else {
        return;
    };
    let schemas = schemas(&spider);
    let p = prompter(&spider, &schemas["concert_singer"]);
    let prompt =
        p.prompt("What is the average, minimum, and maximum age of all singers from France?");
    assert_eq!(matched_lines(&prompt), vec!["singer.country ( France )"]);
    assert!(prompt.ends_with(
        "singer.country ( France )\nWhat is the average, minimum, and maximum age of all singers from France?\n"
    ));
    // Case and punctuation do not matter; nothing matched gives `None`.
    let prompt = p.prompt("singers from FRANCE!");
    assert_eq!(matched_lines(&prompt), vec!["singer.country ( France )"]);
    let prompt = p.prompt("How many singers do we have?");
    assert_eq!(matched_lines(&prompt), vec!["None"]);

    let p = prompter(&spider, &schemas["world_1"]);
    let lines =
        matched_lines(&p.prompt("What are the names of nations speak both English and French?"));
    assert!(
        lines
            .iter()
            .any(|l| l == "countrylanguage.language ( English , French )"),
        "{lines:?}"
    );
    // Near-exact: a plural still finds the value when the common part covers both.
    let lines =
        matched_lines(&p.prompt("Which countries are in the Netherlands Antilless region?"));
    assert!(
        lines.iter().any(|l| l.contains("Netherlands Antilles")),
        "{lines:?}"
    );
}

/// Splits a table line into `(qualified column, parts)` using the known column order.
fn column_parts(line: &str, table: &str, columns: &[String]) -> Vec<(String, Vec<String>)> {
    let body = line
        .strip_prefix(&format!("table {table} , columns = [ "))
        .unwrap_or_else(|| panic!("table line: {line}"))
        .strip_suffix(" ]")
        .unwrap_or_else(|| panic!("table line end: {line}"));
    let mut out = Vec::new();
    let mut rest = body;
    for (i, col) in columns.iter().enumerate() {
        let start = format!("{table}.{col} ( ");
        rest = rest
            .strip_prefix(&start)
            .unwrap_or_else(|| panic!("expected {start:?} in {line}"));
        let end = match columns.get(i + 1) {
            Some(next) => rest
                .find(&format!(" ) , {table}.{next} ( "))
                .unwrap_or_else(|| panic!("end of {col} in {line}")),
            None => rest
                .strip_suffix(" )")
                .map(str::len)
                .unwrap_or_else(|| panic!("end of {col} in {line}")),
        };
        let parts = rest[..end].split(" | ").map(str::to_string).collect();
        out.push((format!("{table}.{col}"), parts));
        rest = rest[end..].strip_prefix(" ) , ").unwrap_or("");
    }
    out
}

fn display(name: &str) -> String {
    let lower = name.to_lowercase();
    if lower.chars().all(|c| c.is_alphanumeric() || c == '_') {
        lower
    } else {
        format!("`{lower}`")
    }
}

#[test]
fn schema_part_follows_tables_json() {
    let Some(spider) = spider_dir("schema_part_follows_tables_json") else {
        return;
    };
    let schemas = schemas(&spider);
    for &(db_id, _) in SNAPSHOTS {
        let schema = &schemas[db_id];
        let p = prompter(&spider, schema);
        let text = p.schema_text();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("database schema :"));
        for table in &schema.tables {
            let line = lines.next().expect("one line per table");
            let tname = display(&table.name);
            let cols: Vec<String> = table.columns.iter().map(|c| display(&c.name)).collect();
            let parts = column_parts(line, &tname, &cols);
            for (column, (qualified, parts)) in table.columns.iter().zip(parts) {
                let is_pk = parts.iter().any(|p| p == "primary key");
                assert_eq!(is_pk, column.primary_key, "{db_id}: {qualified} {parts:?}");
                assert!(
                    !parts[0].is_empty() && !parts[0].contains(':'),
                    "type of {qualified}"
                );
                let has_comment = parts.iter().any(|p| p.starts_with("comment : "));
                let squash = |s: &str| {
                    s.chars()
                        .filter(|c| *c != '_' && *c != ' ')
                        .collect::<String>()
                        .to_lowercase()
                };
                assert_eq!(
                    has_comment,
                    squash(&column.name) != squash(&column.natural_name),
                    "{db_id}: {qualified} {parts:?}"
                );
                if let Some(values) = parts.iter().find_map(|p| p.strip_prefix("values : ")) {
                    let values: Vec<&str> = values.split(" , ").collect();
                    assert!(values.len() <= 2, "{qualified}: {values:?}");
                    for v in values {
                        assert!(
                            !v.trim().is_empty() && v.chars().count() <= 25,
                            "{qualified}: {v:?}"
                        );
                    }
                }
            }
        }
        assert_eq!(lines.next(), Some("foreign keys :"));
        let fk_lines: BTreeSet<String> = lines.map(str::to_string).collect();
        let expected: BTreeSet<String> = if schema.foreign_keys.is_empty() {
            ["None".to_string()].into()
        } else {
            schema
                .foreign_keys
                .iter()
                .map(|fk| {
                    let name = |r: kidbench_sql::schema::ColumnRef| {
                        let t = &schema.tables[r.table];
                        format!(
                            "{}.{}",
                            display(&t.name),
                            display(&t.columns[r.column].name)
                        )
                    };
                    format!("{} = {}", name(fk.from), name(fk.to))
                })
                .collect()
        };
        assert_eq!(fk_lines, expected, "{db_id}");
    }
}

#[test]
fn concert_singer_details() {
    let Some(spider) = spider_dir("concert_singer_details") else {
        return;
    };
    let schemas = schemas(&spider);
    let text = prompter(&spider, &schemas["concert_singer"])
        .schema_text()
        .to_string();
    assert!(
        text.contains("singer.singer_id ( int | primary key | values : 1 , 2 )"),
        "{text}"
    );
    assert!(
        text.contains("concert.stadium_id = stadium.stadium_id\n"),
        "{text}"
    );
    // Natural names that only differ by case and `_` are not comments.
    assert!(!text.contains("comment : singer id"), "{text}");
    let text = prompter(&spider, &schemas["pets_1"])
        .schema_text()
        .to_string();
    assert!(
        text.contains("student.stuid ( integer | primary key | comment : student id"),
        "{text}"
    );
}

#[test]
fn every_dev_question_gets_a_prompt_quickly() {
    let Some(spider) = spider_dir("every_dev_question_gets_a_prompt_quickly") else {
        return;
    };
    let schemas = schemas(&spider);
    let dev = dev(&spider);
    let start = Instant::now();
    let mut prompters: BTreeMap<String, DatabasePrompter> = BTreeMap::new();
    let mut without_file = BTreeSet::new();
    for ex in &dev {
        let db_id = ex["db_id"].as_str().expect("db_id");
        if prompters.contains_key(db_id) || without_file.contains(db_id) {
            continue;
        }
        // This copy of Spider ships wta_1 as a .sql dump only; such databases cannot be prompted.
        if !db_path(&spider, db_id).is_file() {
            without_file.insert(db_id.to_string());
            continue;
        }
        prompters.insert(db_id.to_string(), prompter(&spider, &schemas[db_id]));
    }
    let built = start.elapsed();
    let start = Instant::now();
    let mut matched = 0usize;
    let mut prompted_questions = 0usize;
    for ex in &dev {
        let Some(p) = prompters.get(ex["db_id"].as_str().expect("db_id")) else {
            continue;
        };
        prompted_questions += 1;
        let q = ex["question"].as_str().expect("question");
        let prompt = p.prompt(q);
        assert!(prompt.starts_with(p.schema_text()));
        assert!(prompt.ends_with(&format!("\n{q}\n")) || q.contains('\n'));
        matched += usize::from(!prompt.contains("matched contents :\nNone\n"));
    }
    let prompted = start.elapsed();
    for p in prompters.values() {
        assert!(p.warnings().is_empty(), "{}: {:?}", p.db_id(), p.warnings());
    }
    eprintln!(
        "{} databases indexed in {built:?} (skipped, no .sqlite file: {without_file:?}); \
         {prompted_questions} prompts in {prompted:?}; {matched} with matched contents",
        prompters.len(),
    );
    assert!(
        without_file.len() <= 1,
        "dev databases without a file: {without_file:?}"
    );
    assert!(
        matched > prompted_questions / 3,
        "only {matched} prompts matched database values"
    );
}

#[test]
fn every_spider_database_has_a_readable_schema() {
    let Some(spider) = spider_dir("every_spider_database_has_a_readable_schema") else {
        return;
    };
    let schemas = schemas(&spider);
    assert_eq!(schemas.len(), 166);
    for (db_id, schema) in &schemas {
        let path = db_path(&spider, db_id);
        if !path.is_file() {
            continue; // tables.json lists a few databases that ship without a file
        }
        let from_file = schema_from_sqlite(&path, db_id).unwrap_or_else(|e| panic!("{e}"));
        // tables.json lists SQLite's internal sqlite_sequence for some databases; the file
        // schema leaves internal tables out.
        let names = |s: &Schema| -> BTreeSet<String> {
            s.tables
                .iter()
                .map(|t| t.name.to_lowercase())
                .filter(|n| !n.starts_with("sqlite_"))
                .collect()
        };
        assert_eq!(names(&from_file), names(schema), "{db_id}: tables differ");
    }
}

#[test]
fn missing_database_names_the_path() {
    let Some(spider) = spider_dir("missing_database_names_the_path") else {
        return;
    };
    let schemas = schemas(&spider);
    let err = match DatabasePrompter::new(
        "/nonexistent/x.sqlite",
        &schemas["concert_singer"],
        PromptOptions::default(),
    ) {
        Ok(_) => panic!("built a prompter for a missing file"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("/nonexistent/x.sqlite"), "{err}");
}

/// The spaced layout round-trips every Spider dev query (same tokens and literal values), and
/// in the spaced prompt every table and column name follows a space, as it does in spaced SQL.
#[test]
fn spaced_layout_round_trips_spider_dev_and_names_follow_spaces() {
    use kidbench_sql::prompt::PromptStyle;
    use kidbench_sql::spaced::{lex, space_sql, unspace_sql};
    let Some(spider) = spider_dir("spaced_layout_round_trips_spider_dev_and_names_follow_spaces")
    else {
        return;
    };
    for q in dev(&spider) {
        let sql = q["query"].as_str().expect("query");
        let spaced = space_sql(sql);
        assert_eq!(lex(&unspace_sql(&spaced)), lex(sql), "{sql}");
        assert_eq!(lex(&spaced).len(), lex(sql).len(), "{sql}");
    }
    let all = schemas(&spider);
    let schema = &all["concert_singer"];
    let opts = PromptOptions {
        sample_values: 0,
        style: PromptStyle::Spaced,
        ..PromptOptions::default()
    };
    let p = DatabasePrompter::new(db_path(&spider, "concert_singer"), schema, opts)
        .unwrap_or_else(|e| panic!("{e}"));
    let text = p.prompt("How many singers are from France?");
    for t in &schema.tables {
        assert!(
            text.contains(&format!(" {} ", t.name.to_lowercase())),
            "{}\n{text}",
            t.name
        );
        for c in &t.columns {
            let name = c.name.to_lowercase();
            assert!(
                text.contains(&format!(" {name} ")) || text.contains(&format!(" {name}\n")),
                "{name}\n{text}"
            );
        }
    }
    assert!(text.contains(" . "), "{text}");
}
