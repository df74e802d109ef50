//! Trains a tokenizer on a text file (one prompt or SQL per line) and saves it.
//!
//! `cargo run -p kidbench-tokenizer --example train_tokenizer -- LINES.txt VOCAB OUT_DIR`

use kidbench_tokenizer::SqlTokenizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, vocab, out] = args.as_slice() else {
        return Err("usage: train_tokenizer LINES.txt VOCAB_SIZE OUT_DIR".into());
    };
    let text = std::fs::read_to_string(input)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let tok = SqlTokenizer::train(lines.iter().copied(), vocab.parse()?)?;
    tok.save(out)?;
    let total: usize = lines
        .iter()
        .map(|l| tok.encode(l).map(|ids| ids.len()))
        .sum::<Result<usize, _>>()?;
    println!(
        "vocab {} ; {} lines ; {:.1} tokens/line ; {:.2} bytes/token ; saved to {out}",
        tok.vocab_size(),
        lines.len(),
        total as f64 / lines.len().max(1) as f64,
        text.len() as f64 / total.max(1) as f64
    );
    Ok(())
}
