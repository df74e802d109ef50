//! `kidbench score`: score a model as it is, without training: a preset with a local folder
//! (`smollm2-135m`) or any local Hugging Face folder, on a benchmark's dev split.
//!
//! The pieces, in order:
//! * the sample: every usable dev question, or `--limit N` of them drawn by a seeded shuffle
//!   (`--seed`), scored in dev order; `score.json` lists their indexes;
//! * the prompt: the CodeS prompt of `kidbench run` ([`kidbench_sql::prompt`]), after
//!   `--shots K` demonstrations (a train question's prompt followed by its gold SQL) drawn with
//!   the seed from the train split, one per database and never from the question's own
//!   database;
//! * the chat template of the tokenizer (`chat_template` of tokenizer_config.json, or
//!   chat_template.jinja), rendered with minijinja as transformers renders it, unless
//!   `--no-chat`: a system message ([`SYSTEM_PROMPT`]), each shot as a user turn (its prompt)
//!   and an assistant turn (its SQL), then the question as a user turn and the generation
//!   prompt. Without a template (or with `--no-chat`) the raw text is the shots, each followed
//!   by a blank line, then the question's prompt, as `kidbench run` gives it;
//! * greedy decoding that stops at the model's end tokens (eos and the `eos_token_id`s of
//!   config.json and generation_config.json) or after `--max-new-tokens`;
//! * the SQL taken from the reply by [`extract_sql`] ([`EXTRACTION_RULE`]);
//! * EX (and TS when the benchmark has a built test suite) through the scoring path of
//!   `kidbench run` ([`kidbench_run::score::score_sql`]), and its result files in `--out`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use kidbench_model::{GenerationConfig, Sampling};
use kidbench_results::{Outcome, Record, RecordKey, Role};
use kidbench_run::score::{score_sql, write_lines, Scored};
use kidbench_sql::benchmark::{Benchmark, Split};
use kidbench_sql::eval::EvalOptions;
use kidbench_sql::prompt::{DatabasePrompter, PromptOptions};
use kidbench_sql::schema::{load_tables_json_map, schema_from_sqlite};
use kidbench_tokenizer::SqlTokenizer;
use kidbench_train::bench::{self, Item};
use kidbench_train::presets::{self, ModelFlags, Resolved};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::paths::DataArgs;

/// `kidbench score`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScoreArgs {
    /// The model: a preset with a local folder (e.g. smollm2-135m; `scripts/models.sh NAME`
    /// fetches it) or the path of a local Hugging Face folder (Qwen2 or LLaMA).
    #[arg(long)]
    pub model: Option<String>,
    /// The folder of a named preset (default $KIDBENCH_MODELS/<name>), or, alone, any HF folder.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Benchmark whose dev split is scored (`kidbench benchmarks` lists them).
    #[arg(long, default_value = "synth")]
    pub benchmark: String,
    /// Score this many dev questions, drawn by a shuffle seeded with --seed (default: all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Seed of the sample and of the shots.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Demonstrations before each question (K-shot), drawn from the train split.
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    /// Most tokens generated per question.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Results folder (default results/score/<model>-<benchmark>-<K>shot-<chat|raw>-s<seed>[-n<N>]).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Give the raw prompt even when the tokenizer has a chat template.
    #[arg(long)]
    pub no_chat: bool,
    /// Prompts per generation batch.
    #[arg(long, default_value_t = 8)]
    pub gen_batch_size: usize,
    /// Score these replies instead of generating: a file with one JSON string per line (a raw
    /// reply, extracted like the model's), one per sampled question in dev order. The model's
    /// tokenizer still builds the prompts (their lengths are reported); its weights are not
    /// loaded. For replies of another program on the same sample.
    #[arg(long)]
    pub replies: Option<PathBuf>,
    /// auto | cpu | cuda.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

/// The flags that name the model.
const MODEL_FLAGS: ModelFlags = ModelFlags {
    name: "--model",
    dir: "--model-dir",
    default: "",
};

/// The system message of chat prompts.
pub const SYSTEM_PROMPT: &str = "You translate questions into SQLite queries. Each message \
gives a database schema, database values that match the question, and the question. Answer with \
one SQL query and nothing else.";

/// The rule of [`extract_sql`], written into `score.json`.
pub const EXTRACTION_RULE: &str = "v1: inside the first ``` fence when the reply has one (a \
language tag after the fence is skipped; an unclosed fence runs to the end), else the whole \
reply; leading labels 'SQL query:', 'SQLite query:', 'SQL:', 'SQLite:', 'Query:', 'Answer:' \
dropped (any case); from the first word SELECT (any case) or WITH (upper case) when there is \
one; up to the first ';' outside quotes, a blank line or a ``` fence; whitespace collapsed \
onto one line";

/// The SQL of a model's reply ([`EXTRACTION_RULE`]).
pub fn extract_sql(reply: &str) -> String {
    let body = fenced(reply).unwrap_or(reply);
    let body = strip_labels(body.trim());
    let from = match sql_start(body) {
        Some(i) => &body[i..],
        None => body,
    };
    one_line(&from[..sql_end(from)])
}

/// The text inside the first ``` fence (after its language tag), up to the next fence.
fn fenced(reply: &str) -> Option<&str> {
    let open = reply.find("```")?;
    let after = &reply[open + 3..];
    // a language tag (```sql) runs to the end of the fence's line
    let body = match after.find('\n') {
        Some(nl)
            if after[..nl]
                .trim()
                .chars()
                .all(|c| c.is_ascii_alphanumeric()) =>
        {
            &after[nl + 1..]
        }
        _ => after,
    };
    Some(match body.find("```") {
        Some(close) => &body[..close],
        None => body,
    })
}

fn strip_labels(mut s: &str) -> &str {
    const LABELS: [&str; 6] = [
        "sql query:",
        "sqlite query:",
        "sql:",
        "sqlite:",
        "query:",
        "answer:",
    ];
    loop {
        let lower = s.to_ascii_lowercase();
        match LABELS.iter().find(|l| lower.starts_with(*l)) {
            Some(l) => s = s[l.len()..].trim_start(),
            None => return s,
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `word` (ASCII) stands at byte `i` of `s` as a whole word.
fn word_at(s: &[u8], i: usize, len: usize) -> bool {
    (i == 0 || !is_word_byte(s[i - 1])) && s.get(i + len).is_none_or(|&b| !is_word_byte(b))
}

/// Byte offset of the first word `SELECT` (any case) or `WITH` (upper case).
fn sql_start(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let bytes = s.as_bytes();
    let select = lower
        .match_indices("select")
        .map(|(i, _)| i)
        .find(|&i| word_at(bytes, i, 6));
    let with = s
        .match_indices("WITH")
        .map(|(i, _)| i)
        .find(|&i| word_at(bytes, i, 4));
    match (select, with) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Byte offset where the query ends: the first `;` outside quotes, a blank line or a fence.
fn sql_end(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' | b'`' if !s[i..].starts_with("```") => quote = Some(b),
                b';' => return i,
                b'`' => return i,
                b'\n' => {
                    let rest = &s[i + 1..];
                    let blank = rest
                        .find('\n')
                        .is_some_and(|nl| rest[..nl].trim().is_empty());
                    if blank {
                        return i;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    s.len()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// A tokenizer's chat template.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    pub source: String,
    /// Where it was read from.
    pub file: PathBuf,
    pub bos_token: String,
    pub eos_token: String,
}

/// The token text of a tokenizer_config.json field that is a string or `{"content": ...}`.
fn token_text(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(m) => m.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

impl ChatTemplate {
    /// The chat template of the HF folder `dir`: chat_template.jinja, else the
    /// `chat_template` of tokenizer_config.json (a string, or a list of `{name, template}`
    /// whose `default` entry is taken); `None` when it has none.
    pub fn of_folder(dir: &Path) -> anyhow::Result<Option<ChatTemplate>> {
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = if cfg_path.is_file() {
            serde_json::from_str(
                &std::fs::read_to_string(&cfg_path)
                    .with_context(|| format!("reading {}", cfg_path.display()))?,
            )
            .with_context(|| format!("parsing {}", cfg_path.display()))?
        } else {
            serde_json::Value::Null
        };
        let jinja = dir.join("chat_template.jinja");
        let (source, file) = if jinja.is_file() {
            let s = std::fs::read_to_string(&jinja)
                .with_context(|| format!("reading {}", jinja.display()))?;
            (s, jinja)
        } else {
            let source = match cfg.get("chat_template") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template"))
                    .and_then(|t| t.as_str())
                    .map(str::to_string),
                _ => None,
            };
            match source {
                Some(s) => (s, cfg_path),
                None => return Ok(None),
            }
        };
        Ok(Some(ChatTemplate {
            source,
            file,
            bos_token: token_text(cfg.get("bos_token")).unwrap_or_default(),
            eos_token: token_text(cfg.get("eos_token")).unwrap_or_default(),
        }))
    }

    /// Renders `messages` as transformers' `apply_chat_template` does: Jinja with
    /// `trim_blocks` and `lstrip_blocks`, Python's string methods, `raise_exception`, and the
    /// variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token`.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> anyhow::Result<String> {
        let mut env = minijinja::Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .context("the Jinja syntax of chat templates")?,
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        let template = env
            .template_from_str(&self.source)
            .with_context(|| format!("the chat template of {}", self.file.display()))?;
        let messages: Vec<minijinja::Value> = messages
            .iter()
            .map(|m| {
                minijinja::Value::from(BTreeMap::from([
                    ("role".to_string(), m.role.clone()),
                    ("content".to_string(), m.content.clone()),
                ]))
            })
            .collect();
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .with_context(|| format!("rendering the chat template of {}", self.file.display()))
    }
}

/// A demonstration: a train question with its prompt and gold SQL.
#[derive(Debug, Clone)]
struct Shot {
    index: usize,
    db_id: String,
    prompt: String,
    sql: String,
}

/// `shots + 1` train questions, each from another database, drawn by a shuffle seeded with
/// `seed`, so that every dev question can have `shots` of them from databases other than its
/// own. Prompts are built only for the drawn databases.
fn draw_shots(
    bench: &Benchmark,
    shots: usize,
    seed: u64,
    options: &PromptOptions,
) -> anyhow::Result<Vec<Shot>> {
    if shots == 0 {
        return Ok(Vec::new());
    }
    let mut examples = bench
        .examples(Split::Train)
        .with_context(|| format!("loading the train split of {} for --shots", bench.name()))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1); // the sample uses stream 0
    examples.shuffle(&mut rng);
    let schemas = match bench.tables_path(Split::Train) {
        Some(p) if p.is_file() => {
            load_tables_json_map(&p).with_context(|| format!("reading schemas {}", p.display()))?
        }
        _ => BTreeMap::new(),
    };
    let use_evidence = bench.spec.evidence;
    let mut out: Vec<Shot> = Vec::new();
    for ex in &examples {
        if out.len() == shots + 1 {
            break;
        }
        if out.iter().any(|s| s.db_id == ex.db_id) {
            continue;
        }
        let Some(path) = bench.database_path(Split::Train, &ex.db_id) else {
            continue;
        };
        let schema = match schemas.get(&ex.db_id) {
            Some(s) => s.clone(),
            None => schema_from_sqlite(&path, &ex.db_id)
                .with_context(|| format!("reading the schema of {}", path.display()))?,
        };
        let prompter = DatabasePrompter::new(&path, &schema, options.clone())
            .with_context(|| format!("building the prompt of {}", path.display()))?;
        out.push(Shot {
            index: ex.index,
            db_id: ex.db_id.clone(),
            prompt: prompter.prompt(&ex.model_question(use_evidence)),
            sql: one_line(&ex.query),
        });
    }
    if out.len() < shots {
        anyhow::bail!(
            "--shots {shots}: the train split of {} has questions from only {} database(s) \
             present; the shots come from distinct databases",
            bench.name(),
            out.len()
        );
    }
    Ok(out)
}

/// The `k` shots of a question on `db_id`: the first ones from other databases.
fn shots_for<'a>(pool: &'a [Shot], db_id: &str, k: usize) -> Vec<&'a Shot> {
    pool.iter().filter(|s| s.db_id != db_id).take(k).collect()
}

/// The raw prompt: each shot's prompt and SQL, a blank line, then the question's prompt.
fn raw_prompt(shots: &[&Shot], prompt: &str) -> String {
    let mut text = String::new();
    for s in shots {
        text.push_str(&s.prompt);
        text.push_str(&s.sql);
        text.push_str("\n\n");
    }
    text.push_str(prompt);
    text
}

/// The chat: the system message, a user/assistant turn per shot, the question.
fn chat_messages(shots: &[&Shot], prompt: &str) -> Vec<Message> {
    let mut m = vec![Message::new("system", SYSTEM_PROMPT)];
    for s in shots {
        m.push(Message::new("user", s.prompt.trim_end()));
        m.push(Message::new("assistant", &s.sql));
    }
    m.push(Message::new("user", prompt.trim_end()));
    m
}

/// The sampled questions: all of them, or `limit` drawn by a shuffle seeded with `seed`
/// (stream 0), in dev order.
fn sample(items: Vec<Item>, limit: Option<usize>, seed: u64) -> Vec<Item> {
    match limit {
        Some(n) if n < items.len() => {
            let mut idx: Vec<usize> = (0..items.len()).collect();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(0);
            idx.shuffle(&mut rng);
            let mut keep = idx[..n].to_vec();
            keep.sort_unstable();
            let mut items: Vec<Option<Item>> = items.into_iter().map(Some).collect();
            keep.iter()
                .map(|&i| items[i].take().expect("each index once"))
                .collect()
        }
        _ => items,
    }
}

/// One scored question, as `replies/score.jsonl` lists it.
#[derive(Debug, Clone, Serialize)]
struct QuestionLine {
    index: usize,
    db_id: String,
    shots: Vec<usize>,
    prompt_tokens: usize,
    new_tokens: usize,
    stopped_at_eos: bool,
    reply: String,
    sql: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Stats {
    min: usize,
    mean: f64,
    max: usize,
}

fn stats(v: &[usize]) -> Stats {
    Stats {
        min: v.iter().copied().min().unwrap_or(0),
        mean: v.iter().sum::<usize>() as f64 / v.len().max(1) as f64,
        max: v.iter().copied().max().unwrap_or(0),
    }
}

/// The 1-, 5- and 15-minute load averages (Linux), for the record.
fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn default_out(a: &ScoreArgs, model: &str, chat: bool) -> PathBuf {
    let mut name = format!(
        "{}-{}-{}shot-{}-s{}",
        kidbench_run::plan::file_safe(model),
        kidbench_run::plan::file_safe(&a.benchmark),
        a.shots,
        if chat { "chat" } else { "raw" },
        a.seed
    );
    if let Some(n) = a.limit {
        name.push_str(&format!("-n{n}"));
    }
    PathBuf::from("results").join("score").join(name)
}

/// Reads `--replies`: one JSON string per line.
fn read_replies(path: &Path, expected: usize) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--replies {}: reading it", path.display()))?;
    let replies: Vec<String> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str::<String>(l).with_context(|| {
                format!(
                    "--replies {}: line {} is not a JSON string",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    if replies.len() != expected {
        anyhow::bail!(
            "--replies {}: {} replies for {expected} sampled questions (one per question, in dev order)",
            path.display(),
            replies.len()
        );
    }
    Ok(replies)
}

/// What generation gave, per question.
struct Generated {
    replies: Vec<String>,
    new_tokens: Vec<usize>,
    stopped: Vec<bool>,
    seconds: f64,
}

/// Greedy, batched decoding (longest prompts first) until an end token or `max_new`.
fn generate(
    model: &kidbench_model::Qwen2ForCausalLM,
    tok: &SqlTokenizer,
    prompts: &[Vec<i64>],
    batch_size: usize,
    max_new: usize,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Generated> {
    let start = Instant::now();
    let cfg = GenerationConfig {
        max_new_tokens: max_new as i64,
        sampling: Sampling::Greedy,
        eos_token_ids: tok.stop_ids(),
        pad_token_id: tok.pad_id(),
        seed: 0,
        return_logprobs: false,
    };
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(prompts[i].len()));
    let n = prompts.len();
    let (mut replies, mut new_tokens, mut stopped) =
        (vec![String::new(); n], vec![0; n], vec![false; n]);
    for chunk in order.chunks(batch_size.max(1)) {
        let batch: Vec<Vec<i64>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
        let g = kidbench_model::generate_from_prompts(model, &batch, &cfg)
            .context("generating replies")?;
        for (j, &i) in chunk.iter().enumerate() {
            new_tokens[i] = g.tokens[j].len();
            stopped[i] = g.stopped_at_eos.get(j).copied().unwrap_or(false);
            replies[i] = tok.decode(&g.tokens[j]).context("decoding a reply")?;
        }
        bar.inc(chunk.len() as u64);
    }
    Ok(Generated {
        replies,
        new_tokens,
        stopped,
        seconds: start.elapsed().as_secs_f64(),
    })
}

pub fn run(a: &ScoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let load_before = load_average();
    if a.model.is_none() && a.model_dir.is_none() {
        anyhow::bail!("kidbench score needs --model PRESET|DIR (or --model-dir DIR)");
    }
    if a.gen_batch_size == 0 {
        anyhow::bail!("--gen-batch-size 0: a generation batch needs at least one prompt");
    }
    if a.max_new_tokens == 0 {
        anyhow::bail!("--max-new-tokens 0: a reply needs at least one token");
    }
    if a.limit == Some(0) {
        anyhow::bail!("--limit 0: give a number of questions, or leave it out");
    }
    let resolved = presets::resolve_model(a.model.as_deref(), a.model_dir.as_deref(), MODEL_FLAGS)?;
    let (name, dir) = match &resolved {
        Resolved::Scratch(s) => anyhow::bail!(
            "--model {}: a from-scratch preset has no weights until it is trained; kidbench \
             score scores a pretrained model (a preset with a folder such as smollm2-135m, or \
             the path of a Hugging Face folder)",
            s.name
        ),
        Resolved::Local { name, dir, .. } => (name.clone(), dir.clone()),
    };
    let quiet = a.quiet;
    let roots = a.data.roots();
    let bench = if a.data.benchmarks_dir.is_some() {
        a.data.registry()?.open(&a.benchmark, &roots)?
    } else {
        bench::open(&a.benchmark, &roots.data, &roots.databases, !quiet)?
    };
    let options = PromptOptions::default();
    let dev = bench::load_split(&bench, Split::Dev, None, &options)?;
    if dev.items.is_empty() {
        anyhow::bail!("benchmark '{}' has no usable dev question", bench.name());
    }
    let dev_questions = dev.items.len();
    let items = sample(dev.items.clone(), a.limit, a.seed);
    let pool = draw_shots(&bench, a.shots, a.seed, &options)?;

    let tok = SqlTokenizer::load(&dir)
        .with_context(|| format!("loading the tokenizer of {name} from {}", dir.display()))?;
    let config = kidbench_model::load_config(&dir)
        .with_context(|| format!("reading the config of {name} in {}", dir.display()))?;
    let template = if a.no_chat {
        None
    } else {
        ChatTemplate::of_folder(&dir)?
    };
    let chat = template.is_some();
    let room = config.max_position_embeddings - a.max_new_tokens as i64;
    let mut prompts: Vec<Vec<i64>> = Vec::with_capacity(items.len());
    let mut example_prompt = String::new();
    let mut item_shots: Vec<Vec<usize>> = Vec::new();
    for it in &items {
        let shots = shots_for(&pool, &it.db_id, a.shots);
        let (text, ids) = match &template {
            Some(t) => {
                let text = t.render(&chat_messages(&shots, &it.prompt), true)?;
                let ids = tok.encode_with_special_tokens(&text)?;
                (text, ids)
            }
            None => {
                let text = raw_prompt(&shots, &it.prompt);
                let mut ids: Vec<i64> = tok.bos_id().into_iter().collect();
                ids.extend(tok.encode(&text)?);
                (text, ids)
            }
        };
        if ids.len() as i64 > room {
            anyhow::bail!(
                "dev question {} ({}): the {}-shot prompt has {} tokens, and {name} has {} \
                 positions, {} of them kept for --max-new-tokens; give fewer --shots or a \
                 smaller --max-new-tokens",
                it.index,
                it.db_id,
                a.shots,
                ids.len(),
                config.max_position_embeddings,
                a.max_new_tokens
            );
        }
        if example_prompt.is_empty() {
            example_prompt = text;
        }
        item_shots.push(shots.iter().map(|s| s.index).collect());
        prompts.push(ids);
    }
    let prompt_tokens: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let device_name;
    let generated = match &a.replies {
        Some(path) => {
            device_name = "none (--replies)".to_string();
            Generated {
                replies: read_replies(path, items.len())?,
                new_tokens: vec![0; items.len()],
                stopped: vec![false; items.len()],
                seconds: 0.0,
            }
        }
        None => {
            let device = kidbench_train::lm::parse_device(&a.device)?;
            device_name = match device {
                tch::Device::Cpu => "cpu".to_string(),
                _ => "cuda".to_string(),
            };
            let lm = kidbench_train::lm::load_dir(&dir, device)?;
            eprintln!(
                "kidbench: scoring {name} on {} questions of {} ({}-shot, {}), prompts of {} to {} tokens",
                items.len(),
                bench.name(),
                a.shots,
                if chat { "chat template" } else { "raw prompt" },
                prompt_tokens.iter().min().unwrap_or(&0),
                prompt_tokens.iter().max().unwrap_or(&0),
            );
            let bar =
                kidbench_run::score::progress_bar(items.len(), &format!("generate {name}"), quiet);
            let g = generate(
                &lm.model,
                &tok,
                &prompts,
                a.gen_batch_size,
                a.max_new_tokens,
                &bar,
            )?;
            bar.finish_and_clear();
            g
        }
    };
    let sql: Vec<String> = generated.replies.iter().map(|r| extract_sql(r)).collect();

    let suite_dir = kidbench_testsuite::default_suite_dir(&roots.databases, bench.suite_name());
    let suite = kidbench_testsuite::Suite::open_if_built(&suite_dir)
        .with_context(|| format!("opening the test suite {}", suite_dir.display()))?;
    let compare = kidbench_run::context::compare_mode(&bench);
    let opts = EvalOptions {
        mode: compare,
        ..EvalOptions::default()
    };
    let scoring = score_sql(&items, &sql, &dev.databases, &opts, suite.as_ref());
    let new_tokens: usize = generated.new_tokens.iter().sum();
    let scored = Scored {
        predictions: sql.clone(),
        scoring,
        generate_seconds: generated.seconds,
        new_tokens,
    };

    // What decides the scores, hashed: the record's plan hash.
    let model_files = kidbench_run::plan::folder_digest(&dir)?;
    let sample_indexes: Vec<usize> = items.iter().map(|it| it.index).collect();
    let shot_list: Vec<serde_json::Value> = pool
        .iter()
        .map(|s| serde_json::json!({"train_index": s.index, "db_id": s.db_id}))
        .collect();
    let identity = serde_json::json!({
        "command": "score",
        "versions": kidbench_run::plan::Versions::current(),
        "model_files": model_files,
        "benchmark": bench.name(),
        "dev_files": bench::file_checksums(&bench, Split::Dev)?,
        "sample": sample_indexes,
        "shots": shot_list,
        "chat_template": template.as_ref().map(|t| (&t.source, &t.bos_token, &t.eos_token)),
        "system_prompt": chat.then_some(SYSTEM_PROMPT),
        "max_new_tokens": a.max_new_tokens,
        "extraction": EXTRACTION_RULE,
        "compare_mode": compare.as_str(),
        "test_suite": suite.as_ref().map(|s| s.dir.join("manifest.json")).map(|p| bench::sha256_file(&p)).transpose()?,
        "replies": a.replies.as_ref().map(|p| bench::sha256_file(p)).transpose()?,
    });
    let plan_hash = kidbench_run::plan::hash_of(&identity);

    let out = a.out.clone().unwrap_or_else(|| default_out(a, &name, chat));
    let label = "score";
    scored.write_files(&out, label)?;
    let gold: Vec<String> = items.iter().map(|it| one_line(&it.gold)).collect();
    write_lines(&out.join("predictions/gold.sql"), &gold)?;
    let lines: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            serde_json::to_string(&QuestionLine {
                index: it.index,
                db_id: it.db_id.clone(),
                shots: item_shots[i].clone(),
                prompt_tokens: prompt_tokens[i],
                new_tokens: generated.new_tokens[i],
                stopped_at_eos: generated.stopped[i],
                reply: generated.replies[i].clone(),
                sql: sql[i].clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    write_lines(&out.join(format!("replies/{label}.jsonl")), &lines)?;
    kidbench_train::trainer::write_atomic(
        &out.join("prompt-example.txt"),
        example_prompt.as_bytes(),
    )
    .with_context(|| format!("writing {}", out.join("prompt-example.txt").display()))?;
    let mut params = BTreeMap::new();
    params.insert("shots".to_string(), a.shots.to_string());
    params.insert(
        "prompt".to_string(),
        if chat { "chat" } else { "raw" }.to_string(),
    );
    let record = Record {
        schema: kidbench_results::RECORD_SCHEMA,
        plan_hash: plan_hash.clone(),
        label: label.to_string(),
        key: RecordKey {
            role: Role::Teacher,
            method: label.to_string(),
            params,
            seed: a.seed,
            benchmark: bench.name().to_string(),
            teacher: name.clone(),
            student: String::new(),
            student_warmup: None,
            budget: String::new(),
        },
        outcome: Outcome::Scored(Box::new(scored.record_scores(label))),
    };
    kidbench_results::write_record(&out, &record, &scored.question_verdicts())?;
    let wall = started.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "model": name,
        "model_dir": dir,
        "model_files": identity["model_files"],
        "benchmark": bench.name(),
        "dev_questions": dev_questions,
        "limit": a.limit,
        "seed": a.seed,
        "questions": items.len(),
        "sample": identity["sample"],
        "shots": a.shots,
        "shot_pool": identity["shots"],
        "chat": chat,
        "chat_template_file": template.as_ref().map(|t| t.file.clone()),
        "system_prompt": identity["system_prompt"],
        "max_new_tokens": a.max_new_tokens,
        "gen_batch_size": a.gen_batch_size,
        "device": device_name,
        "stop_ids": tok.stop_ids(),
        "extraction": EXTRACTION_RULE,
        "ex": scored.ex(),
        "ts": scored.ts(),
        "prompt_tokens": stats(&prompt_tokens),
        "new_tokens": new_tokens,
        "stopped_at_eos": generated.stopped.iter().filter(|&&s| s).count(),
        "generate_seconds": generated.seconds,
        "tokens_per_second": scored.tokens_per_second(),
        "wall_seconds": wall,
        "load_average_start": load_before,
        "load_average_end": load_average(),
        "plan_hash": plan_hash,
        "replies_file": a.replies,
    });
    kidbench_train::trainer::write_atomic(
        &out.join("score.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", out.join("score.json").display()))?;
    let ts = match scored.ts() {
        Some(t) => format!(", TS {:.1} %", 100.0 * t),
        None => String::new(),
    };
    let p = stats(&prompt_tokens);
    println!(
        "{name} on {} ({} of {dev_questions} dev questions, seed {}, {}-shot, {}): EX {:.1} %{ts}; \
         prompts {}-{} tokens (mean {:.0}); {new_tokens} new tokens in {:.1} s ({:.1} tokens/s); \
         {:.1} s in all",
        bench.name(),
        items.len(),
        a.seed,
        a.shots,
        if chat { "chat" } else { "raw" },
        100.0 * scored.ex(),
        p.min,
        p.max,
        p.mean,
        generated.seconds,
        scored.tokens_per_second(),
        wall
    );
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_takes_the_sql_out_of_a_reply() {
        let cases = [
            ("SELECT name FROM singer", "SELECT name FROM singer"),
            (
                "```sql\nSELECT name\nFROM singer;\n```\nThis query lists the names.",
                "SELECT name FROM singer",
            ),
            ("```\nSELECT 1\n", "SELECT 1"),
            ("SQL: SELECT count(*) FROM t", "SELECT count(*) FROM t"),
            ("sql query: select a from b", "select a from b"),
            (
                "The answer is: select a from b; it returns a.",
                "select a from b",
            ),
            (
                "SELECT name FROM t WHERE x = 'a;b' AND y = \"c;d\"; more",
                "SELECT name FROM t WHERE x = 'a;b' AND y = \"c;d\"",
            ),
            (
                "WITH c AS (SELECT 1 AS x) SELECT x FROM c",
                "WITH c AS (SELECT 1 AS x) SELECT x FROM c",
            ),
            (
                "SELECT a FROM b\n\ndatabase schema :\ntable b",
                "SELECT a FROM b",
            ),
            (
                "SELECT a\n  FROM b\n WHERE c = 1",
                "SELECT a FROM b WHERE c = 1",
            ),
            // no query in it: the reply itself, on one line ("selected" is not SELECT, "with"
            // not WITH)
            (
                "I selected the rows\nwith care.",
                "I selected the rows with care.",
            ),
            ("Answer: none", "none"),
            ("", ""),
        ];
        for (reply, want) in cases {
            assert_eq!(extract_sql(reply), want, "reply {reply:?}");
        }
    }

    /// SmolLM2-135M-Instruct's template, as its tokenizer_config.json has it (the JSON's `\n` are
    /// newlines in the template's string literals).
    const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn smollm2_template() -> ChatTemplate {
        ChatTemplate {
            source: SMOLLM2_TEMPLATE.to_string(),
            file: PathBuf::from("tokenizer_config.json"),
            bos_token: "<|im_start|>".into(),
            eos_token: "<|im_end|>".into(),
        }
    }

    #[test]
    fn smollm2_chat_template_renders_as_transformers_does() {
        let t = smollm2_template();
        // Written by hand from the template: one `<|im_start|>role\ncontent<|im_end|>\n` per
        // message, then the assistant header.
        let got = t
            .render(
                &[
                    Message::new("system", "Be brief."),
                    Message::new("user", "schema\nHow many?"),
                    Message::new("assistant", "SELECT 1"),
                    Message::new("user", "And now?"),
                ],
                true,
            )
            .expect("render");
        assert_eq!(
            got,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nschema\nHow many?<|im_end|>\n\
             <|im_start|>assistant\nSELECT 1<|im_end|>\n<|im_start|>user\nAnd now?<|im_end|>\n\
             <|im_start|>assistant\n"
        );
        // Without a system message the template adds its own; without the generation prompt
        // there is no assistant header.
        let got = t
            .render(
                &[Message::new("user", "What is the capital of France?")],
                false,
            )
            .expect("render");
        assert_eq!(
            got,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        );
    }

    /// The template above is the one in the converted folder, when it is on this machine
    /// (`scripts/models.sh smollm2-135m`; the tests of harness/model need it anyway).
    #[test]
    fn the_smollm2_folder_has_that_template() {
        let dir = kidbench_train::presets::models_root().join("smollm2-135m");
        if !dir.join("tokenizer_config.json").is_file() {
            eprintln!(
                "SKIPPED: no {} (scripts/models.sh smollm2-135m)",
                dir.display()
            );
            assert!(
                std::env::var("CI").is_err(),
                "CI fetches smollm2-135m first (scripts/test.sh)"
            );
            return;
        }
        let t = ChatTemplate::of_folder(&dir)
            .expect("read")
            .expect("a template");
        assert_eq!(t.source, SMOLLM2_TEMPLATE);
        assert_eq!(t.eos_token, "<|im_end|>");
    }

    #[test]
    fn template_errors_name_the_file() {
        let mut t = smollm2_template();
        t.source = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}".into();
        t.file = PathBuf::from("/m/tokenizer_config.json");
        let e = format!(
            "{:#}",
            t.render(&[Message::new("system", "x")], true).unwrap_err()
        );
        assert!(e.contains("/m/tokenizer_config.json"), "{e}");
        assert!(e.contains("System role not supported"), "{e}");
        // Python string methods work (pycompat), as in transformers' Jinja.
        t.source = "{{ messages[0]['content'].strip().upper() }}".into();
        assert_eq!(
            t.render(&[Message::new("user", "  select  ")], false)
                .unwrap(),
            "SELECT"
        );
    }

    #[test]
    fn the_sample_is_seeded_and_in_dev_order() {
        let items: Vec<Item> = (0..50)
            .map(|i| Item {
                index: i,
                db_id: "d".into(),
                question: String::new(),
                gold: String::new(),
                prompt: String::new(),
            })
            .collect();
        let a: Vec<usize> = sample(items.clone(), Some(10), 7)
            .iter()
            .map(|i| i.index)
            .collect();
        let b: Vec<usize> = sample(items.clone(), Some(10), 7)
            .iter()
            .map(|i| i.index)
            .collect();
        let c: Vec<usize> = sample(items.clone(), Some(10), 8)
            .iter()
            .map(|i| i.index)
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "{a:?}");
        assert_ne!(
            a,
            (0..10).collect::<Vec<_>>(),
            "a shuffle, not the first ten"
        );
        assert_eq!(sample(items, Some(80), 7).len(), 50);
    }

    #[test]
    fn shots_skip_the_question_database() {
        let shot = |i: usize, db: &str| Shot {
            index: i,
            db_id: db.into(),
            prompt: format!("p{i}\n"),
            sql: format!("SELECT {i}"),
        };
        let pool = vec![shot(4, "a"), shot(9, "b"), shot(2, "c")];
        let got: Vec<usize> = shots_for(&pool, "b", 2).iter().map(|s| s.index).collect();
        assert_eq!(got, vec![4, 2]);
        let got: Vec<usize> = shots_for(&pool, "z", 2).iter().map(|s| s.index).collect();
        assert_eq!(got, vec![4, 9]);
        let s = shots_for(&pool, "c", 1);
        assert_eq!(raw_prompt(&s, "q\n"), "p4\nSELECT 4\n\nq\n");
        let m = chat_messages(&s, "q\n");
        assert_eq!(
            m,
            vec![
                Message::new("system", SYSTEM_PROMPT),
                Message::new("user", "p4"),
                Message::new("assistant", "SELECT 4"),
                Message::new("user", "q"),
            ]
        );
    }
}
