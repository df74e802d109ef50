//! A tiny random LLaMA checkpoint in the Hugging Face layout, written by the tests: a trained
//! BPE tokenizer (kidbench's, with `<s>`/`</s>` as special tokens), config.json,
//! model.safetensors and a chat template in tokenizer_config.json. It generates noise, fast.

use std::path::Path;

use kidbench_model::{Config, Qwen2ForCausalLM, TokenIds};
use kidbench_tokenizer::SqlTokenizer;

/// A ChatML-like template over the tokenizer's own specials.
pub const TEMPLATE: &str = "{% for message in messages %}{{ '<s>' + message['role'] + '\n' + \
message['content'] + '</s>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<s>assistant\n' \
}}{% endif %}";

/// Writes the tiny model into `dir`.
pub fn write(dir: &Path) {
    let texts = [
        "select name from singer where age > 3",
        "how many singers are there ?",
        "select count ( * ) from concert",
        "database schema : table columns values foreign keys matched contents",
    ];
    let corpus: Vec<&str> = texts.iter().cycle().take(80).copied().collect();
    let tok = SqlTokenizer::train(corpus, 300).expect("train a tokenizer");
    let cfg = Config {
        vocab_size: tok.vocab_size() as i64,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        num_key_value_heads: Some(1),
        max_position_embeddings: 16384,
        tie_word_embeddings: true,
        attention_bias: Some(false),
        model_type: Some("llama".into()),
        eos_token_id: Some(TokenIds::One(tok.eos_id())),
        ..Config::default()
    };
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let model = Qwen2ForCausalLM::new(&vs.root(), &cfg).expect("model");
    kidbench_model::save(dir, &model).expect("save the model");
    tok.save(dir).expect("save the tokenizer");
    let tc = serde_json::json!({
        "bos_token": "<s>",
        "eos_token": "</s>",
        "chat_template": TEMPLATE,
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&tc).expect("json"),
    )
    .expect("write tokenizer_config.json");
}
