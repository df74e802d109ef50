//! Shared corpus for the tests: varied text-to-SQL prompts and queries.
#![allow(dead_code)]

use kidbench_tokenizer::SqlTokenizer;

/// Schema-like prompt prefix.
pub const SCHEMA: &str = "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);\nCREATE TABLE concert (concert_id INTEGER, concert_name TEXT, year TEXT, stadium_id INTEGER);";

/// A deterministic corpus of prompts and SQL (about 600 texts).
pub fn corpus() -> Vec<String> {
    let cities = [
        "Paris",
        "Zürich",
        "New York",
        "São Paulo",
        "O'Hare",
        "Tōkyō",
        "Berlin",
    ];
    let cols = ["name", "country", "age", "singer_id", "Song_Name", "year"];
    let mut out = Vec::new();
    for (i, city) in cities.iter().enumerate() {
        for (j, col) in cols.iter().enumerate() {
            let n = 17 * i + 3 * j + 1990;
            out.push(format!(
                "{SCHEMA}\n-- Question: What is the {col} of singers from {city} older than {n}?\n-- SQL:"
            ));
            out.push(format!(
                "SELECT {col} FROM singer WHERE country = '{city}' AND age >= {n} ORDER BY {col} DESC LIMIT {}",
                i + 1
            ));
            out.push(format!(
                "SELECT count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.concert_id WHERE T2.year != \"{n}\" GROUP BY T1.{col} HAVING count(*) > {j}"
            ));
            out.push(format!(
                "select avg(age), max(age) from singer where name like '%{city}%' or age < {}.5",
                n % 100
            ));
            out.push(format!("How many concerts were held in {city} in {n}?"));
        }
    }
    out
}

/// Strings that must survive encode → decode byte for byte.
pub fn round_trip_cases() -> Vec<String> {
    let mut v: Vec<String> = [
        "SELECT name FROM singer WHERE country = 'Zürich'",
        "SELECT * FROM t WHERE a != 3 AND b >= 4.25 AND c <= -7 AND d <> 'x'",
        "select  Name ,  AGE from   Singer   where  x='O''Brien'",
        "SELECT \"Song Name\" FROM `concert` WHERE year BETWEEN 2014 AND 2015;",
        "What is the average age of singers from São Paulo, Tōkyō or Zürich?",
        "  leading and trailing spaces  ",
        "tabs\tand\nnewlines\r\n and unicode: 北京, Ελλάδα, emoji 🎵, ß",
        "SELECT T1.name FROM a AS T1 JOIN b AS T2 ON T1.id = T2.id WHERE T2.v IN (1, 2, 3) -- comment",
        "0 00 007 1e10 3.14159 -0.5 123456789012345678901234567890",
        "MiXeD CaSe SeLeCt, UPPER, lower, snake_case_name, camelCaseName",
        "literal specials: <s> </s> <pad> <mask> <|endoftext|> <|kid_mask|>",
        "quotes ' \" ` ´ ‘ ’ “ ” and punctuation !@#$%^&*()[]{};:,.<>/?\\|~+=-_",
        "",
        " ",
        "x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(corpus().into_iter().step_by(7));
    v
}

/// Tokenizer trained on [`corpus`].
pub fn trained(vocab_size: usize) -> SqlTokenizer {
    let texts = corpus();
    SqlTokenizer::train(texts.iter().map(String::as_str), vocab_size).expect("training succeeds")
}
