use super::*;
use kidbench_plugin_host::testing::{collate, ToyHost};
use kidbench_plugin_host::{PluginEntry, PluginMethod, SampledBatch, SpecialTokens};
use rand::SeedableRng;

const TOK: SpecialTokens = SpecialTokens {
    pad: 0,
    eos: 2,
    mask: 3,
};
const V: i64 = 40;

fn create(kv: &[(&str, &str)]) -> anyhow::Result<PluginMethod> {
    let entry = PluginEntry::from_module(kidbench_plugin_root(), "<linked>".as_ref())?;
    let kv: Vec<(String, String)> = kv
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(entry.create(&kv)?)
}

fn step(i: u64) -> StepInfo {
    StepInfo {
        step: i,
        total_steps: 10,
        micro_batch: 0,
        seed: 31 + i,
    }
}

/// Rows with 4-token prompts and targets of 20, 12 and 7 tokens (+ EOS), tokens in 4..V.
fn gold() -> anyhow::Result<SampledBatch> {
    let row = |target: usize, off: i64| {
        let mut v = vec![1, 5, 6, 7];
        v.extend((0..target as i64).map(|i| 4 + (i * 7 + off) % (V - 4)));
        v.push(2);
        (v, 4)
    };
    collate(&[row(20, 0), row(12, 3), row(7, 11)], 0)
}

#[test]
fn alpha_zero_and_vanilla_equal_rkd_plus_mle_exactly() -> anyhow::Result<()> {
    let g = gold()?;
    for kv in [
        [("alpha", "0"), ("temperature", "1.5"), ("mle", "imperfect")],
        [
            ("alpha", "0"),
            ("temperature", "1.5"),
            ("mle", "ground_truth"),
        ],
        [
            ("vanilla", "true"),
            ("temperature", "1.5"),
            ("mle", "imperfect"),
        ],
        [
            ("vanilla", "true"),
            ("temperature", "1.5"),
            ("mle", "ground_truth"),
        ],
    ] {
        let m = create(&kv)?;
        let mut host = ToyHost::new(V, 3);
        let loss = host.step(&m, &g, step(0), TOK)?;
        let s = host.logits(Model::Student, &g.input_ids, true);
        let t = host.logits(Model::Teacher, &g.input_ids, false);
        let rkd = divergence_loss(
            Divergence::ReverseKl,
            &s,
            &t,
            &g.loss_mask,
            g.norm_tokens,
            1.5,
        )? + mle_loss(&s, &g.labels, g.norm_tokens, IGNORE)?;
        assert!(loss.equal(&rkd), "{kv:?}: {loss} vs {rkd}");
        assert!(host.forwards.is_empty());
        assert_eq!(
            host.batch_forwards,
            [(Model::Student, true), (Model::Teacher, false)]
        );
    }
    Ok(())
}

fn read_dump(path: &std::path::Path) -> anyhow::Result<Vec<serde_json::Value>> {
    std::fs::read_to_string(path)?
        .lines()
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

fn ints(v: &serde_json::Value, key: &str) -> Vec<i64> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_i64()).collect())
        .unwrap_or_default()
}

#[test]
fn imperfect_targets_differ_only_at_masked_target_tokens() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let g = gold()?;
    let labels = to_vec_i64(&g.labels)?;
    let t = g.input_ids.size()[1] as usize;
    for strategy in ["random", "uniform", "hard", "easy"] {
        for fill in ["argmax", "sample"] {
            let path = dir.path().join(format!("{strategy}-{fill}.jsonl"));
            let ps = path.to_string_lossy().to_string();
            let m = create(&[
                ("alpha", "0.3"),
                ("strategy", strategy),
                ("fill", fill),
                ("dump", &ps),
            ])?;
            let mut host = ToyHost::new(V, 5);
            let loss = host.step(&m, &g, step(1), TOK)?;
            loss.backward();
            // no forward by the host; hard/easy need the student's entropy on the ground truth
            assert!(host.batch_forwards.is_empty());
            let mut want = vec![
                (Model::Student, false),
                (Model::Student, true),
                (Model::Teacher, false),
            ];
            if matches!(strategy, "hard" | "easy") {
                want.insert(0, (Model::Student, false));
            }
            assert_eq!(host.forwards, want, "{strategy}");
            let rows = read_dump(&path)?;
            assert_eq!(rows.len(), 3);
            let mut changed = 0;
            for (r, row) in rows.iter().enumerate() {
                let (gt, masked, imp, pos) = (
                    ints(row, "ground_truth"),
                    ints(row, "masked"),
                    ints(row, "imperfect"),
                    ints(row, "positions"),
                );
                let lab = &labels[r * t..(r + 1) * t];
                let cands = candidates(&gt, lab, TOK.eos);
                let want = (0.3 * cands.len() as f64).round() as usize;
                assert_eq!(pos.len(), want, "{strategy}: row {r}");
                for q in 0..t {
                    let is_masked = pos.contains(&(q as i64));
                    if is_masked {
                        // a target token (position q-1 carries loss), not EOS, not prompt/pad
                        assert!(
                            q >= 1 && lab[q - 1] != IGNORE && gt[q] != TOK.eos && gt[q] != TOK.pad
                        );
                        assert_eq!(masked[q], TOK.mask);
                        assert_ne!(imp[q], TOK.mask, "filled by the student");
                        changed += (imp[q] != gt[q]) as usize;
                    } else {
                        assert_eq!(masked[q], gt[q]);
                        assert_eq!(
                            imp[q], gt[q],
                            "{strategy}/{fill}: row {r} token {q} changed"
                        );
                    }
                }
            }
            assert!(
                changed > 0,
                "the toy student should get some masked tokens wrong"
            );
        }
    }
    Ok(())
}

#[test]
fn mask_only_uses_the_masked_sequence_without_a_fill_forward() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("d.jsonl");
    let ps = path.to_string_lossy().to_string();
    let m = create(&[("alpha", "0.5"), ("mask_only", "true"), ("dump", &ps)])?;
    let mut host = ToyHost::new(V, 5);
    let _ = host.step(&m, &gold()?, step(2), TOK)?;
    assert_eq!(
        host.forwards,
        [(Model::Student, true), (Model::Teacher, false)]
    );
    for row in read_dump(&path)? {
        assert_eq!(ints(&row, "masked"), ints(&row, "imperfect"));
    }
    Ok(())
}

/// The imperfect ids of the last step's rows, from a dump file, as a `[B, T]` tensor.
fn dumped_imperfect(path: &std::path::Path, t: usize) -> anyhow::Result<Tensor> {
    let rows = read_dump(path)?;
    let mut flat = Vec::new();
    for r in &rows {
        let imp = ints(r, "imperfect");
        anyhow::ensure!(imp.len() == t, "row length");
        flat.extend(imp);
    }
    Ok(Tensor::from_slice(&flat).view([rows.len() as i64, t as i64]))
}

#[test]
fn mle_on_the_imperfect_forward_is_one_student_pass() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let g = gold()?;
    let t = g.input_ids.size()[1] as usize;
    for (mode, weight) in [
        ("imperfect", "1"),
        ("imperfect", "0.5"),
        ("ground_truth", "1"),
        ("ground_truth", "0"),
    ] {
        let path = dir.path().join(format!("{mode}-{weight}.jsonl"));
        let ps = path.to_string_lossy().to_string();
        let m = create(&[
            ("alpha", "0.4"),
            ("mle", mode),
            ("mle_weight", weight),
            ("temperature", "1.5"),
            ("dump", &ps),
        ])?;
        let req = m.data_request(&step(3))?;
        let mut host = ToyHost::new(V, 9);
        let loss = host.step(&m, &g, step(3), TOK)?;
        let imp = dumped_imperfect(&path, t)?;
        assert!(!imp.equal(&g.input_ids), "{mode}: some token must change");
        let s_imp = host.logits(Model::Student, &imp, true);
        let t_imp = host.logits(Model::Teacher, &imp, false);
        let rkl = divergence_loss(
            Divergence::ReverseKl,
            &s_imp,
            &t_imp,
            &g.loss_mask,
            g.norm_tokens,
            1.5,
        )?;
        let w: f64 = weight.parse()?;
        // the teacher never runs on the ground truth
        assert!(!req.teacher_logits);
        let want = if mode == "imperfect" {
            // MLE: gold labels on the imperfect sequence's logits; no host forward at all
            assert!(!req.student_logits);
            assert!(host.batch_forwards.is_empty());
            rkl + mle_loss(&s_imp, &g.labels, g.norm_tokens, IGNORE)? * w
        } else if w > 0.0 {
            // MLE on the host's ground-truth forward (with grad)
            assert!(req.student_logits);
            assert_eq!(host.batch_forwards, [(Model::Student, true)]);
            let s_gold = host.logits(Model::Student, &g.input_ids, true);
            rkl + mle_loss(&s_gold, &g.labels, g.norm_tokens, IGNORE)? * w
        } else {
            assert!(!req.student_logits);
            rkl
        };
        assert!(
            loss.allclose(&want, 1e-6, 1e-7, false),
            "{mode}/{weight}: {loss} vs {want}"
        );
        // one student pass with grad, whatever the MLE reading
        let grads = host
            .forwards
            .iter()
            .filter(|f| *f == &(Model::Student, true));
        assert_eq!(grads.count(), 1, "{mode}: {:?}", host.forwards);
        loss.backward();
        assert!(host.student.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
    let e = create(&[("mle", "both")]).expect_err("choice").to_string();
    assert!(e.contains("imperfect|ground_truth"), "{e}");
    Ok(())
}

#[test]
fn seeded_and_needs_a_mask_token() -> anyhow::Result<()> {
    let g = gold()?;
    let run = |seed_step: u64| -> anyhow::Result<f64> {
        let m = create(&[("alpha", "0.4"), ("fill", "sample")])?;
        let mut host = ToyHost::new(V, 8);
        Ok(host.step(&m, &g, step(seed_step), TOK)?.double_value(&[]))
    };
    assert_eq!(run(4)?, run(4)?);
    let m = create(&[("alpha", "0.4")])?;
    let no_mask = SpecialTokens { mask: -1, ..TOK };
    let e = ToyHost::new(V, 8)
        .step(&m, &g, step(0), no_mask)
        .expect_err("no mask token");
    assert!(format!("{e:#}").contains("mask token"), "{e:#}");
    let e = create(&[("alpha", "1.5")]).expect_err("range").to_string();
    assert!(e.contains("[0, 1]"), "{e}");
    let e = create(&[("strategy", "worst")])
        .expect_err("choice")
        .to_string();
    assert!(e.contains("random|uniform|hard|easy"), "{e}");
    let e = create(&[("alpah", "0.1")])
        .expect_err("unknown")
        .to_string();
    assert!(
        e.contains("alpha, strategy, fill, mask_only, vanilla"),
        "{e}"
    );
    Ok(())
}

#[test]
fn hard_and_easy_pick_by_entropy_and_never_eos() {
    // tokens: 0 BOS, 1..3 prompt, then target 4..9, EOS at 9
    let ids = [1, 5, 6, 7, 10, 11, 12, 13, 14, 2];
    let mut labels = [IGNORE; 10];
    labels[3..9].copy_from_slice(&ids[4..10]);
    let c = candidates(&ids, &labels, 2);
    assert_eq!(c, [4, 5, 6, 7, 8]);
    let entropy = [0.0, 0.0, 0.0, 0.1, 0.9, 0.5, 0.8, 0.2, 9.0, 0.0];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    // token q is scored by entropy[q-1]: 4→.1, 5→.9, 6→.5, 7→.8, 8→.2
    assert_eq!(select(&c, 0.4, Strategy::Hard, &entropy, &mut rng), [5, 7]);
    assert_eq!(select(&c, 0.4, Strategy::Easy, &entropy, &mut rng), [4, 8]);
    assert_eq!(select(&c, 1.0, Strategy::Uniform, &entropy, &mut rng), c);
    assert_eq!(
        select(&c, 0.0, Strategy::Random, &entropy, &mut rng),
        Vec::<usize>::new()
    );
    assert_eq!(
        select(&c, 0.6, Strategy::Random, &entropy, &mut rng).len(),
        3
    );
}

/// Every conformance property, at the default and at the settings that change the data path:
/// `mle=ground_truth` (the host's student forward), `strategy=hard` (an entropy forward),
/// `fill=sample`, `mask_only`, and `vanilla` (= rkd).
#[test]
fn passes_plugin_check() {
    use kidbench_plugin_host::check::{assert_conforms, Property};
    let r = assert_conforms(kidbench_plugin_root(), &[]);
    assert_eq!(
        r.finding(Property::Divergence).map(|f| f.outcome),
        Some(kidbench_plugin_host::check::Outcome::Skip),
        "kid declares no closed form: {r}"
    );
    for params in [
        [("alpha", "0.5"), ("mle", "ground_truth")],
        [("strategy", "hard"), ("fill", "sample")],
        [("mask_only", "true"), ("alpha", "0.4")],
        [("vanilla", "true"), ("temperature", "2")],
    ] {
        assert_conforms(kidbench_plugin_root(), &params);
    }
}
