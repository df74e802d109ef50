//! Re-skinned training databases: a train schema with its tables and columns renamed to other
//! English words (data kinds, keys and row counts unchanged), so the questions, SQL and prompts
//! of a re-skin use names the original never had.
//!
//! Why: with only the train domains' own names, a small model trained from scratch memorizes
//! those names and never learns to copy table and column names from the prompt, which is what
//! unseen dev schemas need. Re-skins make memorizing useless; the model must read the schema.

use rand::seq::IndexedRandom;
use rand::Rng;

use crate::spec::{ColumnSpec, DbSpec, Kind, Split, TableSpec};

/// Nouns for tables (singular; the plural is built by `templates::plural`).
const TABLE_NOUNS: &[&str] = &[
    "account",
    "actor",
    "agency",
    "airline",
    "airport",
    "album",
    "animal",
    "apartment",
    "applicant",
    "archive",
    "arena",
    "artist",
    "assignment",
    "athlete",
    "auction",
    "award",
    "bakery",
    "band",
    "bank",
    "battery",
    "beach",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bridge",
    "budget",
    "building",
    "cabin",
    "cable",
    "camera",
    "campaign",
    "camp",
    "canal",
    "candidate",
    "cargo",
    "carpet",
    "castle",
    "category",
    "cellar",
    "channel",
    "chapter",
    "charity",
    "chef",
    "circuit",
    "client",
    "climber",
    "clinic",
    "coach",
    "coin",
    "college",
    "comet",
    "committee",
    "company",
    "concert",
    "contract",
    "cottage",
    "council",
    "course",
    "court",
    "crater",
    "crew",
    "cruise",
    "customer",
    "dancer",
    "dataset",
    "delivery",
    "dentist",
    "deposit",
    "designer",
    "device",
    "diver",
    "doctor",
    "donor",
    "drone",
    "editor",
    "election",
    "engine",
    "engineer",
    "episode",
    "estate",
    "event",
    "exhibit",
    "expedition",
    "factory",
    "farm",
    "ferry",
    "festival",
    "film",
    "fleet",
    "forest",
    "fountain",
    "garage",
    "garden",
    "glacier",
    "guide",
    "guild",
    "harbor",
    "helmet",
    "hotel",
    "inspector",
    "instrument",
    "invoice",
    "island",
    "journal",
    "judge",
    "kitchen",
    "laboratory",
    "lake",
    "lamp",
    "lecture",
    "lender",
    "lighthouse",
    "locomotive",
    "machine",
    "magazine",
    "market",
    "meadow",
    "mechanic",
    "merchant",
    "meteor",
    "mill",
    "mine",
    "mission",
    "monument",
    "mountain",
    "musician",
    "nurse",
    "observatory",
    "office",
    "orchard",
    "orchestra",
    "owner",
    "painting",
    "parcel",
    "patient",
    "pavilion",
    "pharmacy",
    "pilot",
    "planet",
    "player",
    "plant",
    "poem",
    "port",
    "pottery",
    "printer",
    "prison",
    "producer",
    "professor",
    "quarry",
    "racer",
    "radio",
    "ranch",
    "recipe",
    "refinery",
    "reservoir",
    "restaurant",
    "river",
    "robot",
    "rocket",
    "runner",
    "sailor",
    "satellite",
    "scanner",
    "scholar",
    "sculpture",
    "seller",
    "sensor",
    "server",
    "shelter",
    "ship",
    "singer",
    "skater",
    "soldier",
    "spacecraft",
    "stadium",
    "station",
    "statue",
    "studio",
    "supplier",
    "surgeon",
    "swimmer",
    "tablet",
    "tailor",
    "teacher",
    "temple",
    "tenant",
    "theater",
    "ticket",
    "tower",
    "tractor",
    "trail",
    "trainer",
    "tram",
    "tunnel",
    "turbine",
    "umpire",
    "vaccine",
    "valley",
    "vendor",
    "vessel",
    "village",
    "vineyard",
    "volcano",
    "voter",
    "wagon",
    "warehouse",
    "website",
    "well",
    "workshop",
    "writer",
    "yacht",
];

/// Words for column names (one or two joined by `_`; the natural name joins them by a space).
/// No SQL keyword or function name (`limit`, `group`, `count`, ...) is among them.
const COLUMN_WORDS: &[&str] = &[
    "altitude", "amount", "area", "balance", "base", "batch", "bonus", "brand", "budget",
    "capacity", "category", "charge", "class", "code", "color", "cost", "country", "credit",
    "depth", "distance", "district", "duration", "energy", "entry", "fee", "flavor", "floor",
    "grade", "height", "income", "kind", "label", "language", "latitude", "length", "level",
    "license", "load", "mass", "material", "mileage", "mode", "model", "motto", "nickname",
    "origin", "output", "owner", "pace", "phase", "position", "power", "pressure", "profit",
    "quality", "quota", "rate", "rating", "region", "revenue", "reward", "salary", "score",
    "sector", "series", "shape", "signal", "size", "speed", "stage", "status", "style", "surface",
    "team", "tier", "title", "tone", "track", "type", "value", "variant", "version", "volume",
    "weight", "width", "yield", "zone",
];

/// Qualifiers that make two-word column names (`peak_speed`, `annual_cost`).
const QUALIFIERS: &[&str] = &[
    "annual", "average", "base", "daily", "final", "first", "gross", "home", "initial", "last",
    "main", "max", "min", "monthly", "net", "opening", "peak", "primary", "start", "target", "top",
    "total", "weekly",
];

/// Words for the dates of re-skins (`<word>_date`, natural `<word> date`).
const DATE_WORDS: &[&str] = &[
    "arrival",
    "birth",
    "close",
    "delivery",
    "departure",
    "due",
    "end",
    "entry",
    "exit",
    "hire",
    "issue",
    "launch",
    "open",
    "order",
    "payment",
    "release",
    "renewal",
    "return",
    "signup",
    "start",
    "visit",
];

/// Words the re-skinner draws from besides its own pools: the table and column names of the
/// dev schemas. A pretrained model knows the English words of an unseen Spider database; a
/// model trained from scratch knows only the words of its training data, so the re-skins use
/// the dev schemas' words (in train domains, never with the dev structure, questions or data).
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedWords {
    /// Table names (`record_label`).
    pub tables: Vec<String>,
    /// Non-key column names with their natural names (`year_created`, `year created`).
    pub columns: Vec<(String, String)>,
}

impl SharedWords {
    /// The words of the dev schemas among `specs`.
    pub(crate) fn of_dev(specs: &[DbSpec]) -> Self {
        let mut w = SharedWords::default();
        for s in specs.iter().filter(|s| s.split == Split::Dev) {
            for t in &s.tables {
                if !w.tables.contains(&t.name) && !TABLE_NOUNS.contains(&t.name.as_str()) {
                    w.tables.push(t.name.clone());
                }
                for c in &t.columns {
                    let keyish = matches!(c.kind, Kind::Pk | Kind::Fk(_) | Kind::Person);
                    if !keyish
                        && c.name != "name"
                        && !w.columns.iter().any(|(n, _)| n == &c.name)
                        && !COLUMN_WORDS.contains(&c.name.as_str())
                    {
                        w.columns.push((c.name.clone(), c.natural.clone()));
                    }
                }
            }
        }
        w
    }
}

/// A fresh table noun: a pool word or a shared word.
fn fresh_noun(used: &[String], shared: &SharedWords, rng: &mut impl Rng) -> Option<String> {
    let n = TABLE_NOUNS.len() + shared.tables.len();
    for _ in 0..64 {
        let i = rng.random_range(0..n);
        let w = match TABLE_NOUNS.get(i) {
            Some(w) => w.to_string(),
            None => shared.tables[i - TABLE_NOUNS.len()].clone(),
        };
        if !used.contains(&w) {
            return Some(w);
        }
    }
    fresh(TABLE_NOUNS, used, rng).map(str::to_string)
}

fn fresh<'a>(pool: &[&'a str], used: &[String], rng: &mut impl Rng) -> Option<&'a str> {
    for _ in 0..64 {
        let w = *pool.choose(rng)?;
        if !used.iter().any(|u| u == w) {
            return Some(w);
        }
    }
    pool.iter().copied().find(|w| !used.iter().any(|u| u == w))
}

/// A new column name and natural name for a non-key column of `kind`.
fn column_name(
    kind: &Kind,
    used: &[String],
    shared: &SharedWords,
    rng: &mut impl Rng,
) -> Option<(String, String)> {
    let share = shared.columns.len() as f64 / (shared.columns.len() + COLUMN_WORDS.len()) as f64;
    for _ in 0..64 {
        let (name, natural) = match kind {
            // Label columns keep the words questions use for them ("name", "title").
            Kind::Person => return Some(("name".into(), "name".into())),
            Kind::Date(..) => {
                let w = DATE_WORDS.choose(rng)?;
                (format!("{w}_date"), format!("{w} date"))
            }
            _ if rng.random_bool(share) => shared.columns.choose(rng)?.clone(),
            _ if rng.random_bool(0.4) => {
                let q = QUALIFIERS.choose(rng)?;
                let w = COLUMN_WORDS.choose(rng)?;
                if q == w {
                    continue;
                }
                (format!("{q}_{w}"), format!("{q} {w}"))
            }
            _ => {
                let w = COLUMN_WORDS.choose(rng)?;
                (w.to_string(), w.to_string())
            }
        };
        let id_like = name == "name" && !matches!(kind, Kind::Person);
        if !id_like && !name.ends_with("_id") && !used.contains(&name) {
            return Some((name, natural));
        }
    }
    None
}

/// `spec` (a train database) with every table and column renamed; `k` numbers the re-skin.
/// The new database id is `<db_id>_r<k>`. Returns `None` when a pool ran out of fresh words.
pub(crate) fn reskin(
    spec: &DbSpec,
    k: usize,
    shared: &SharedWords,
    rng: &mut impl Rng,
) -> Option<DbSpec> {
    debug_assert_eq!(spec.split, Split::Train);
    let mut used_tables: Vec<String> = Vec::new();
    let mut tables: Vec<TableSpec> = Vec::with_capacity(spec.tables.len());
    for t in &spec.tables {
        let noun = fresh_noun(&used_tables, shared, rng)?;
        used_tables.push(noun.clone());
        tables.push(TableSpec {
            name: noun.clone(),
            singular: noun.replace('_', " "),
            plural: crate::templates::plural(&noun),
            rows: t.rows,
            columns: Vec::new(),
        });
    }
    for (ti, t) in spec.tables.iter().enumerate() {
        let mut used: Vec<String> = Vec::new();
        let mut columns = Vec::with_capacity(t.columns.len());
        for c in &t.columns {
            let (name, natural) = match &c.kind {
                Kind::Pk => (
                    format!("{}_id", tables[ti].name),
                    format!("{} id", tables[ti].singular),
                ),
                Kind::Fk(parent) => {
                    let parent_old = &spec.tables[*parent];
                    let parent_new = &tables[*parent];
                    if c.natural == parent_old.singular {
                        // the plain reference: `<parent>_id`, natural name the parent's noun
                        (
                            format!("{}_id", parent_new.name),
                            parent_new.singular.clone(),
                        )
                    } else {
                        // a role (`lead_id` -> developer): a new role noun
                        let mut taken = used_tables.clone();
                        taken.extend(used.iter().cloned());
                        let role = fresh_noun(&taken, shared, rng)?;
                        (format!("{role}_id"), role)
                    }
                }
                kind => column_name(kind, &used, shared, rng)?,
            };
            if used.contains(&name) {
                return None;
            }
            used.push(name.clone());
            columns.push(ColumnSpec {
                name,
                natural,
                kind: c.kind.clone(),
            });
        }
        tables[ti].columns = columns;
    }
    Some(DbSpec {
        db_id: format!("{}_r{k}", spec.db_id),
        split: Split::Train,
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn reskins_rename_everything_and_keep_the_structure() -> Result<(), crate::SynthError> {
        let specs = crate::spec::parse()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut skins = 0;
        for s in specs.iter().filter(|s| s.split == Split::Train) {
            let shared = SharedWords::of_dev(&specs);
            let r = reskin(s, 2, &shared, &mut rng).expect("word pools are large enough");
            skins += 1;
            assert_eq!(r.db_id, format!("{}_r2", s.db_id));
            assert_eq!(r.tables.len(), s.tables.len());
            let names: Vec<&str> = r.tables.iter().map(|t| t.name.as_str()).collect();
            let mut uniq = names.clone();
            uniq.sort_unstable();
            uniq.dedup();
            assert_eq!(uniq.len(), names.len(), "{}: {names:?}", r.db_id);
            for (a, b) in s.tables.iter().zip(&r.tables) {
                assert_eq!(a.rows, b.rows);
                assert_eq!(a.columns.len(), b.columns.len());
                assert_eq!(b.columns[0].name, format!("{}_id", b.name));
                let mut cols: Vec<&str> = b.columns.iter().map(|c| c.name.as_str()).collect();
                cols.sort_unstable();
                cols.dedup();
                assert_eq!(cols.len(), b.columns.len(), "{}.{}", r.db_id, b.name);
                for (ca, cb) in a.columns.iter().zip(&b.columns) {
                    assert_eq!(ca.kind.sql_type(), cb.kind.sql_type());
                    match (&ca.kind, &cb.kind) {
                        (Kind::Fk(x), Kind::Fk(y)) => {
                            assert_eq!(x, y);
                            assert!(cb.name.ends_with("_id"));
                        }
                        (Kind::Fk(_), _) | (_, Kind::Fk(_)) => panic!("kind changed"),
                        _ => {}
                    }
                    // no SQL keyword among the new names
                    for kw in ["limit", "group", "order", "select", "count", "rank"] {
                        assert_ne!(cb.name, kw);
                    }
                }
            }
        }
        assert_eq!(skins, 26);
        Ok(())
    }
}
