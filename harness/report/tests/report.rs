//! `kidbench-report` from hand-built records. The expected figures are worked out by hand in
//! the comments, not taken from the code under test.

mod fixture;

use fixture::{first, key, scored};
use kidbench_report::{render_csv, render_markdown, write_report, ReportOptions, CSV_COLUMNS};
use kidbench_results::Role;

fn opts() -> ReportOptions {
    ReportOptions::default()
}

/// The table line whose first cell is `name`.
fn row<'a>(md: &'a str, name: &str) -> Vec<&'a str> {
    let line = md
        .lines()
        .find(|l| l.starts_with(&format!("| {name} |")))
        .unwrap_or_else(|| panic!("no row {name} in\n{md}"));
    line.trim_matches('|').split(" | ").map(str::trim).collect()
}

fn header(md: &str) -> Vec<&str> {
    let line = md
        .lines()
        .find(|l| l.starts_with("| Method |"))
        .expect("a table");
    line.trim_matches('|').split(" | ").map(str::trim).collect()
}

fn col(md: &str, name: &str) -> usize {
    header(md)
        .iter()
        .position(|h| *h == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", header(md)))
}

#[test]
fn the_table_row_says_the_hand_computed_mean_ex_and_latency() {
    let md = render_markdown(&fixture::two_methods(), &opts()).unwrap();
    let sft = row(&md, "sft");
    let kid = row(&md, "kid");
    // sft: 20/40 and 22/40 right -> 50 % and 55 %, mean 52.5 %; t over 2 seeds:
    // s = 0.0354, se = 0.025, t(0.975, 1) = 12.706 -> half-width 31.8 points.
    assert_eq!(sft[col(&md, "EX all")], "52.5 ± 31.8");
    // kid: 32/40 and 30/40 -> 80 % and 75 %, mean 77.5 %, the same spread, but the interval
    // [45.7, 109.3] is clipped to [45.7, 100]: half-width (100 - 45.73) / 2 = 27.1.
    assert_eq!(kid[col(&md, "EX all")], "77.5 ± 27.1");
    assert_eq!(sft[col(&md, "Seeds")], "2");
    // Hardness cycles easy, medium, hard, extra: sft's first 20 hold 5 of each level, its
    // first 22 hold 6 easy, 6 medium, 5 hard, 5 extra.
    assert_eq!(sft[col(&md, "EX easy")], "55.0");
    assert_eq!(sft[col(&md, "EX medium")], "55.0");
    assert_eq!(sft[col(&md, "EX hard")], "50.0");
    assert_eq!(sft[col(&md, "EX extra")], "50.0");
    // Latency: kid 3.0 s per step against sft's 1.0 s (seed 0) and 1.2 s (seed 1):
    // (3.0 + 2.5) / 2 = 2.75.
    assert_eq!(kid[col(&md, "Latency (× sft)")], "2.75×");
    assert_eq!(sft[col(&md, "Latency (× sft)")], "1.00×");
    // What the numbers are.
    assert!(
        md.contains("Student's t over the per-seed accuracies"),
        "{md}"
    );
    assert!(md.contains("paired bootstrap"), "{md}");
    assert!(md.contains("95 %"), "{md}");
    assert!(md.contains("Questions: synth 40"), "{md}");
}

#[test]
fn delta_vs_sft_has_the_right_sign_and_mark() {
    let mut records = fixture::two_methods();
    // fkd: right on the first 10 of 40 in both seeds: 25 % against sft's 52.5 %.
    for seed in 0..2 {
        records.push(scored(
            key(Role::Method, "fkd", &[], seed, "synth"),
            &first(10, 40),
            2.0,
            1e12,
            vec![],
        ));
    }
    let md = render_markdown(&records, &opts()).unwrap();
    let d = col(&md, "Δ EX vs sft");
    let p = col(&md, "p (Holm)");
    // kid - sft = 77.5 - 52.5 = +25.0 points; kid is right wherever sft is, on 12 more
    // questions (ids 20..31): a resample of 40 questions misses all 12 with probability
    // 0.7^40 ≈ 6e-7, so p < 0.01 even after Holm over the two rows.
    let kid = row(&md, "kid");
    assert!(kid[d].starts_with("+25.0 ["), "{}", kid[d]);
    assert!(kid[p].ends_with("**"), "{}", kid[p]);
    // fkd - sft = 25.0 - 52.5 = -27.5 points, also wrong-only discordant pairs.
    let fkd = row(&md, "fkd");
    assert!(fkd[d].starts_with("-27.5 ["), "{}", fkd[d]);
    assert!(fkd[p].ends_with("**"), "{}", fkd[p]);
    // The baseline is not compared with itself.
    assert_eq!(row(&md, "sft")[d], "–");
    assert!(md.contains("across the 2 method row(s)"), "{md}");
}

#[test]
fn one_seed_uses_the_bootstrap_and_mcnemar() {
    let records: Vec<_> = fixture::two_methods()
        .into_iter()
        .filter(|l| l.record.key.seed == 0)
        .collect();
    let md = render_markdown(&records, &opts()).unwrap();
    assert_eq!(row(&md, "sft")[col(&md, "Seeds")], "1");
    // sft seed 0: 20/40 = 50.0 %.
    assert!(row(&md, "sft")[col(&md, "EX all")].starts_with("50.0 ± "));
    assert!(md.contains("percentile bootstrap over questions"), "{md}");
    assert!(md.contains("McNemar's exact test"), "{md}");
    // kid - sft = 80 - 50 = +30 points, 12 discordant pairs all one way: exact two-sided
    // McNemar p = 2 * 0.5^12 = 0.00049 -> "<0.001 **".
    let kid = row(&md, "kid");
    assert!(kid[col(&md, "Δ EX vs sft")].starts_with("+30.0 ["));
    assert_eq!(kid[col(&md, "p (Holm)")], "<0.001 **");
}

#[test]
fn a_failed_record_is_listed_with_its_error_and_left_out() {
    let mut records = fixture::two_methods();
    records.push(fixture::failed(
        key(Role::Method, "kid", &[], 2, "synth"),
        "training kid: loss is NaN at step 7",
    ));
    let md = render_markdown(&records, &opts()).unwrap();
    assert!(md.contains("## Failed runs"), "{md}");
    let line = md
        .lines()
        .find(|l| l.contains("loss is NaN at step 7"))
        .expect("the error");
    assert!(line.contains("| kid | 2 | synth |"), "{line}");
    // kid's figures still rest on its two scored seeds.
    let kid = row(&md, "kid");
    assert_eq!(kid[col(&md, "Seeds")], "2 (1 failed)");
    assert_eq!(kid[col(&md, "EX all")], "77.5 ± 27.1");
    assert!(
        md.contains("5 record(s) from 1 plan(s): 4 scored, 1 failed"),
        "{md}"
    );
}

#[test]
fn the_ablation_table_appears_only_with_the_variants() {
    let md = render_markdown(&fixture::two_methods(), &opts()).unwrap();
    assert!(!md.contains("Ablation"), "{md}");
    let mut records = fixture::two_methods();
    // mask-only: the first 24 of 40 (60 %) in both seeds; vanilla: the first 22 (55 %).
    for seed in 0..2 {
        for (p, right) in [("mask_only", 24), ("vanilla", 22)] {
            records.push(scored(
                key(Role::Method, "kid", &[(p, "true")], seed, "synth"),
                &first(right, 40),
                2.0,
                1e12,
                vec![],
            ));
        }
    }
    let md = render_markdown(&records, &opts()).unwrap();
    assert!(md.contains("### Ablation (Table 5)"), "{md}");
    let ab = &md[md.find("### Ablation").unwrap()..];
    let rewrite = row(ab, "rewrite (KID)");
    assert!(rewrite[2].starts_with("77.5 ± "), "{rewrite:?}");
    assert_eq!(rewrite[3], "–");
    // mask-only - rewrite = 60 - 77.5 = -17.5; vanilla - rewrite = 55 - 77.5 = -22.5.
    let mask = row(ab, "mask-only");
    assert!(mask[3].starts_with("-17.5 ["), "{mask:?}");
    let vanilla = row(ab, "vanilla");
    assert!(vanilla[3].starts_with("-22.5 ["), "{vanilla:?}");
    // Stored defaults are the same row as absent ones: an explicit alpha=0.2 joins kid.
    let mut more = records.clone();
    more.push(scored(
        key(Role::Method, "kid", &[("alpha", "0.20")], 2, "synth"),
        &first(31, 40),
        3.0,
        1e12,
        vec![],
    ));
    let md = render_markdown(&more, &opts()).unwrap();
    assert_eq!(row(&md, "kid")[col(&md, "Seeds")], "3");
}

#[test]
fn the_csv_has_its_header_and_a_known_row() {
    let csv = render_csv(&fixture::two_methods(), &opts()).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
    assert!(CSV_COLUMNS.join(",").starts_with(
        "teacher,student,student_warmup,budget,role,method,params,benchmark,hardness,metric"
    ));
    let sft: Vec<&str> = csv
        .lines()
        .find(|l| l.starts_with("tiny-m,tiny-s,10,steps=150,method,sft,,synth,all,ex,"))
        .expect("sft's EX line")
        .split(',')
        .collect();
    assert_eq!(sft.len(), CSV_COLUMNS.len());
    let c = |name: &str| CSV_COLUMNS.iter().position(|x| *x == name).unwrap();
    // 52.5 % ± 31.77 points (see the table test): [0.207, 0.843].
    assert_eq!(sft[c("mean")], "0.525000");
    let lo: f64 = sft[c("lo")].parse().unwrap();
    let hi: f64 = sft[c("hi")].parse().unwrap();
    assert!(
        (lo - 0.20734).abs() < 1e-3 && (hi - 0.84266).abs() < 1e-3,
        "{lo} {hi}"
    );
    assert_eq!(sft[c("ci")], "t_over_seeds");
    assert_eq!(sft[c("seeds")], "2");
    assert_eq!(sft[c("questions")], "40");
    // kid's delta and latency lines.
    let delta = csv
        .lines()
        .find(|l| l.contains(",kid,,synth,all,delta_ex_vs_sft,"))
        .expect("delta line");
    assert!(
        delta.split(',').nth(c("mean")) == Some("0.250000"),
        "{delta}"
    );
    let lat = csv
        .lines()
        .find(|l| l.contains(",kid,,synth,all,latency_vs_sft,"))
        .expect("latency line");
    assert!(lat.split(',').nth(c("mean")) == Some("2.750000"), "{lat}");
    // Hardness lines: sft's hard level is 50 %.
    assert!(
        csv.lines()
            .any(|l| l
                .starts_with("tiny-m,tiny-s,10,steps=150,method,sft,,synth,hard,ex,,0.500000,")),
        "{csv}"
    );
}

#[test]
fn timings_off_leaves_out_latency_everywhere() {
    let o = ReportOptions {
        timings: false,
        ..opts()
    };
    let records = fixture::realistic();
    let md = render_markdown(&records, &o).unwrap();
    assert!(!md.contains("Latency"), "{md}");
    assert!(!md.contains("×"), "{md}");
    let csv = render_csv(&records, &o).unwrap();
    assert!(!csv.contains("latency"), "{csv}");
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(&records, dir.path(), &o).unwrap();
    assert!(!dir.path().join("charts/pareto.svg").exists());
    assert!(files
        .notes
        .iter()
        .any(|n| n.contains("pareto.svg left out")));
    // Two different latencies, the same report.
    let mut slower = records.clone();
    for l in &mut slower {
        if let kidbench_results::Outcome::Scored(s) = &mut l.record.outcome {
            if let Some(t) = &mut s.training {
                t.seconds_per_step *= 1.7;
                t.train_seconds *= 1.7;
            }
            s.generate_seconds += 3.0;
        }
    }
    assert_eq!(render_markdown(&slower, &o).unwrap(), md);
    assert_eq!(render_csv(&slower, &o).unwrap(), csv);
}

fn read_all(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["", "charts"] {
        let d = dir.join(sub);
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        for p in names {
            out.push((
                p.strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(&p).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn the_same_records_give_byte_identical_files() {
    let records = fixture::realistic();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_report(&records, a.path(), &opts()).unwrap();
    // Another order of the same records.
    let mut reversed = records.clone();
    reversed.reverse();
    write_report(&reversed, b.path(), &opts()).unwrap();
    let (fa, fb) = (read_all(a.path()), read_all(b.path()));
    assert!(
        fa.len() >= 7,
        "{:?}",
        fa.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(fa, fb);
}

#[test]
fn each_chart_is_written_as_svg_with_its_axis_labels() {
    let records = fixture::realistic();
    let keep = std::env::var_os("KIDBENCH_REPORT_KEEP").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let files = write_report(
        &records,
        &dir,
        &ReportOptions {
            png: keep.is_some(),
            ..opts()
        },
    )
    .unwrap();
    for (chart, labels) in [
        (
            "pareto",
            &[
                "Training latency (× sft seconds per step)",
                "EX on synth (%)",
                "Pareto frontier",
            ][..],
        ),
        (
            "strategies",
            &["Masking strategy", "uniform", "hard", "easy"][..],
        ),
        ("alpha", &["alpha (fraction of target tokens masked)"][..]),
        ("curves", &["Training step", "EX on the dev subset (%)"][..]),
        (
            "flops",
            &["Estimated training compute (FLOPs, log scale)"][..],
        ),
    ] {
        let path = dir.join(format!("charts/{chart}.svg"));
        assert!(files.charts.contains(&path), "{chart}: {:?}", files.charts);
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.starts_with("<svg"),
            "{chart}: {}",
            &svg[..60.min(svg.len())]
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{chart}");
        for l in labels {
            assert!(svg.contains(l), "{chart}: no {l}");
        }
    }
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(
        md.contains("![EX vs training latency](charts/pareto.svg)"),
        "{md}"
    );
    assert!(md.contains("### Ablation (Table 5)"), "{md}");
    assert!(md.contains("| teacher |"), "{md}");
    assert!(md.contains("| student init |"), "{md}");
    assert!(md.contains("CUDA out of memory"), "{md}");
}

#[test]
fn charts_without_data_are_left_out_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(&fixture::two_methods(), dir.path(), &opts()).unwrap();
    // sft and kid have latencies and FLOPs; no strategies, alphas or curves.
    assert!(dir.path().join("charts/pareto.svg").exists());
    assert!(dir.path().join("charts/flops.svg").exists());
    for c in ["strategies", "alpha", "curves"] {
        assert!(!dir.path().join(format!("charts/{c}.svg")).exists());
        assert!(
            files
                .notes
                .iter()
                .any(|n| n.starts_with(&format!("{c}.svg left out"))),
            "{:?}",
            files.notes
        );
    }
}

#[test]
fn no_records_and_bad_options_are_errors() {
    assert!(render_markdown(&[], &opts()).is_err());
    let e = render_markdown(
        &fixture::two_methods(),
        &ReportOptions {
            level: 1.5,
            ..opts()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("1.5"), "{e}");
}

#[test]
fn two_benchmarks_get_an_average_and_two_budgets_two_tables() {
    let mut records = fixture::two_methods();
    // spider: sft right on the first 12 / 13 of 40 (30 %, 32.5 %: mean 31.25 %); fkd on
    // the first 20 (seed 0 only); fkd has no synth run.
    for (seed, right) in [(0, 12), (1, 13)] {
        records.push(scored(
            key(Role::Method, "sft", &[], seed, "spider"),
            &first(right, 40),
            1.0,
            1e12,
            vec![],
        ));
    }
    for (seed, right) in [(0, 20), (1, 21)] {
        records.push(scored(
            key(Role::Method, "kid", &[], seed, "spider"),
            &first(right, 40),
            3.0,
            1e12,
            vec![],
        ));
    }
    records.push(scored(
        key(Role::Method, "fkd", &[], 0, "spider"),
        &first(20, 40),
        2.0,
        1e12,
        vec![],
    ));
    // The teacher (no student, no budget) belongs in every table of its teacher.
    records.push(scored(
        key(Role::Teacher, "teacher", &[], 7, "synth"),
        &first(36, 40),
        5.0,
        1e13,
        vec![],
    ));
    // A second budget: one more table.
    let mut k = key(Role::Method, "sft", &[], 0, "synth");
    k.budget = "steps=300".into();
    records.push(scored(k, &first(25, 40), 1.0, 1e12, vec![]));
    let md = render_markdown(&records, &opts()).unwrap();
    let tables: Vec<&str> = md.split("\n## ").skip(1).collect();
    let t150 = tables
        .iter()
        .find(|t| {
            t.starts_with("teacher tiny-m → student tiny-s (warmup 10 steps), budget steps=150")
        })
        .expect("the steps=150 table");
    let t300 = tables
        .iter()
        .find(|t| t.contains("budget steps=300"))
        .expect("the steps=300 table");
    // Avg EX of sft: (52.5 + 31.25) / 2 = 41.875 -> 41.9; fkd has no synth run: no average.
    let avg = col(t150, "Avg EX");
    assert!(row(t150, "sft")[avg].starts_with("41.9 ± "), "{t150}");
    assert_eq!(row(t150, "fkd")[avg], "–");
    assert_eq!(row(t150, "fkd")[col(t150, "synth EX all")], "–");
    // kid on spider: 20/40 and 21/40 -> 51.25 %, sft's 31.25 %: +20.0 points.
    assert!(row(t150, "kid")[col(t150, "spider Δ EX vs sft")].starts_with("+20.0 ["));
    assert!(
        header(t150).contains(&"spider EX all"),
        "{:?}",
        header(t150)
    );
    // The teacher: 36/40 = 90 %, one seed, in both tables.
    assert!(row(t150, "teacher")[col(t150, "synth EX all")].starts_with("90.0 ± "));
    assert!(row(t300, "teacher")[col(t300, "EX all")].starts_with("90.0 ± "));
    assert_eq!(row(t300, "teacher")[col(t300, "Seeds")], "1");
    assert!(
        row(t300, "sft")[col(t300, "EX all")].starts_with("62.5 ± "),
        "{t300}"
    );
    // Charts of several settings are named after them.
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("KIDBENCH_REPORT_KEEP_MULTI")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let files = write_report(&records, &dir, &opts()).unwrap();
    assert!(
        files
            .charts
            .iter()
            .any(|p| p.ends_with("charts/pareto-tiny-m_tiny-s_w10_steps_150.svg")),
        "{:?}",
        files.charts
    );
}

#[test]
fn records_read_back_from_two_folders_give_the_same_report() {
    let records = fixture::realistic();
    let mut outs = Vec::new();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for d in &dirs {
        let run = d.path().join("some/run");
        for l in &records {
            kidbench_results::write_record(&run, &l.record, &l.verdicts).unwrap();
        }
        let loaded = kidbench_results::load_records(std::slice::from_ref(&run)).unwrap();
        assert_eq!(loaded.len(), records.len());
        let o = ReportOptions {
            timings: false,
            ..opts()
        };
        write_report(&loaded, &run.join("report"), &o).unwrap();
        outs.push(read_all(&run.join("report")));
    }
    assert_eq!(outs[0], outs[1]);
    // The report does not name the folders it came from.
    let root = dirs[0].path().display().to_string();
    for (name, bytes) in &outs[0] {
        assert!(!String::from_utf8_lossy(bytes).contains(&root), "{name}");
    }
}

#[test]
fn one_off_teacher_samples_are_named_beside_the_latency() {
    let mut records = fixture::two_methods();
    // fdistill at 2.0 s per step (seed 0 only), with 90 s of fixed teacher samples made first.
    let mut fd = scored(
        fixture::key(Role::Method, "fdistill", &[], 0, "synth"),
        &first(10, 40),
        2.0,
        1e12,
        vec![],
    );
    if let kidbench_results::Outcome::Scored(s) = &mut fd.record.outcome {
        s.training.as_mut().unwrap().time_split.precompute = 90.0;
    }
    records.push(fd);
    let md = render_markdown(&records, &opts()).unwrap();
    // The latency column stays per training step: 2.0 s over sft's 1.0 s in seed 0.
    assert_eq!(row(&md, "fdistill")[col(&md, "Latency (× sft)")], "2.00×");
    // sft trains 150 steps of 1.0 s and 1.2 s: 165 s on average; 90 / 165 = 0.55.
    assert!(
        md.contains("teacher_samples=fixed): fdistill 90 s per run, 0.55× sft's training time."),
        "{md}"
    );
    // Rows without one-off work say nothing of it.
    let plain = render_markdown(&fixture::two_methods(), &opts()).unwrap();
    assert!(!plain.contains("Not in the latency"), "{plain}");
}

fn made_on(records: &mut [kidbench_results::Loaded], cpu: &str, threads: usize) {
    for l in records {
        if let kidbench_results::Outcome::Scored(s) = &mut l.record.outcome {
            s.training.get_or_insert_with(Default::default).machine =
                Some(kidbench_results::Machine {
                    cpu: cpu.into(),
                    flags: vec!["avx2".into(), "avx512f".into()],
                    threads,
                    device: "cpu".into(),
                    env: Default::default(),
                });
        }
    }
}

#[test]
fn the_report_says_which_machine_made_the_records_and_flags_a_mix() {
    let plain = render_markdown(&fixture::two_methods(), &opts()).unwrap();
    assert!(
        !plain.contains("Made on"),
        "old records say nothing: {plain}"
    );

    let mut one = fixture::two_methods();
    let n = one.len();
    made_on(&mut one, "CPU A", 1);
    let md = render_markdown(&one, &opts()).unwrap();
    let want = format!("Made on: CPU A [avx2 avx512f], 1 thread, cpu ({n} records).");
    assert!(md.contains(&want), "{want} not in\n{md}");
    assert!(!md.contains("More than one machine"));

    let mut mixed = fixture::two_methods();
    made_on(&mut mixed[..1], "CPU B", 2);
    made_on(&mut mixed[1..2], "CPU A", 1);
    let md = render_markdown(&mixed, &opts()).unwrap();
    assert!(
        md.contains("CPU A [avx2 avx512f], 1 thread, cpu (1 record)"),
        "{md}"
    );
    assert!(
        md.contains("CPU B [avx2 avx512f], 2 threads, cpu (1 record)"),
        "{md}"
    );
    assert!(
        md.contains(&format!("; {} record(s) do not say", n - 2)),
        "{md}"
    );
    assert!(md.contains("**More than one machine**"), "{md}");
}
