//! `charts/*.svg`: one module per chart over [`crate::summary`], and what they share: the plan
//! (which charts the records can feed, and why the others are left out), the frame (title,
//! plot area, a legend panel on the right), point labels placed so they do not overlap, and
//! the PNG conversion.
//!
//! Every chart is 800×500 px, text is SVG `<text>` (no fonts needed to write it).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::summary::{families, SettingSummary, Summary};
use crate::ReportOptions;

mod alpha;
mod curves;
mod flops;
mod pareto;
mod strategies;

pub(crate) const WIDTH: u32 = 800;
pub(crate) const HEIGHT: u32 = 500;
/// Width of the legend panel on the right.
const LEGEND_W: u32 = 210;
const FONT: &str = "sans-serif";

/// Which chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pareto,
    Strategies,
    Alpha,
    Curves,
    Flops,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Pareto,
        Kind::Strategies,
        Kind::Alpha,
        Kind::Curves,
        Kind::Flops,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Pareto => "pareto",
            Kind::Strategies => "strategies",
            Kind::Alpha => "alpha",
            Kind::Curves => "curves",
            Kind::Flops => "flops",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Pareto => "EX vs training latency",
            Kind::Strategies => "KID masking strategies",
            Kind::Alpha => "KID mask fraction alpha",
            Kind::Curves => "Learning curves",
            Kind::Flops => "EX vs training compute",
        }
    }

    /// Why the chart cannot be drawn for `s`, or `None` when it can.
    fn missing(self, s: &SettingSummary, opts: &ReportOptions) -> Option<String> {
        match self {
            Kind::Pareto => {
                if !opts.timings {
                    Some("timings are left out".into())
                } else if pareto::points(s).len() < 2 {
                    Some(format!(
                        "fewer than two method rows with EX on every benchmark and a latency \
                         ratio to {} (seconds per step of the same seed)",
                        opts.baseline
                    ))
                } else {
                    None
                }
            }
            Kind::Strategies => families(s, "strategy")
                .is_empty()
                .then(|| "no kid rows that differ only in strategy".into()),
            Kind::Alpha => families(s, "alpha")
                .is_empty()
                .then(|| "no kid rows that differ only in alpha".into()),
            Kind::Curves => curves::lines(s)
                .is_empty()
                .then(|| "no learning curves (runs without --eval-every)".into()),
            Kind::Flops => (flops::points(s).len() < 2).then(|| {
                "fewer than two method rows with EX on every benchmark and estimated training \
                 FLOPs"
                    .into()
            }),
        }
    }
}

/// One chart to draw.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    /// File name under `charts/`.
    pub file: String,
    pub title: String,
    /// The setting, when the report has several.
    pub subtitle: Option<String>,
    pub kind: Kind,
    /// Index into [`Summary::settings`].
    pub setting: usize,
}

/// The charts the records can feed, and a note per chart left out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub charts: Vec<Chart>,
    pub skipped: Vec<String>,
}

/// Which charts to draw: a function of the summary and options alone.
pub(crate) fn plan(s: &Summary, opts: &ReportOptions) -> Plan {
    let multi = s.settings.len() > 1;
    let slugs: Vec<String> = s.settings.iter().map(|st| st.setting.slug()).collect();
    let mut plan = Plan::default();
    for (i, st) in s.settings.iter().enumerate() {
        if st.rows.is_empty() {
            continue;
        }
        for kind in Kind::ALL {
            let file = if !multi {
                format!("{}.svg", kind.name())
            } else if slugs.iter().filter(|x| **x == slugs[i]).count() > 1 || slugs[i].is_empty() {
                format!("{}-{}-{}.svg", kind.name(), i + 1, slugs[i])
            } else {
                format!("{}-{}.svg", kind.name(), slugs[i])
            };
            match kind.missing(st, opts) {
                Some(why) => plan.skipped.push(if multi {
                    format!("{file} ({}) left out: {why}", st.setting.title())
                } else {
                    format!("{file} left out: {why}")
                }),
                None => plan.charts.push(Chart {
                    file,
                    title: kind.title().to_string(),
                    subtitle: multi.then(|| st.setting.title()),
                    kind,
                    setting: i,
                }),
            }
        }
    }
    plan
}

/// The SVG text of `chart`.
pub(crate) fn draw(chart: &Chart, s: &Summary, opts: &ReportOptions) -> Result<String, String> {
    let st = &s.settings[chart.setting];
    let title = match &chart.subtitle {
        Some(sub) => format!("{}\n{sub}", chart.title),
        None => chart.title.clone(),
    };
    let title = title.as_str();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).s()?;
        match chart.kind {
            Kind::Pareto => pareto::draw(&root, title, st, opts)?,
            Kind::Strategies => strategies::draw(&root, title, st, opts)?,
            Kind::Alpha => alpha::draw(&root, title, st, opts)?,
            Kind::Curves => curves::draw(&root, title, st)?,
            Kind::Flops => flops::draw(&root, title, st, opts)?,
        }
        root.present().s()?;
    }
    Ok(svg)
}

/// Plotters' errors as text.
pub(crate) trait Msg<T> {
    fn s(self) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Msg<T> for Result<T, E> {
    fn s(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Ten distinct colours (Tableau 10).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Text `px` pixels high. (Plotters writes a size of `s / 1.24` for a font of size `s`.)
pub(crate) fn font(px: u32) -> TextStyle<'static> {
    (FONT, px as f64 * 1.24).into_font().color(&BLACK)
}

/// The title on top, then (plot area, legend panel).
/// `title` may hold a second line (after `\n`), drawn smaller as a subtitle.
pub(crate) fn frame<'a>(root: &Area<'a>, title: &str) -> Result<(Area<'a>, Area<'a>), String> {
    let (main, sub) = match title.split_once('\n') {
        Some((m, s)) => (m, Some(s)),
        None => (title, None),
    };
    let mut body = root.titled(main, font(18)).s()?;
    if let Some(sub) = sub {
        body = body
            .titled(sub, font(12).color(&RGBColor(70, 70, 70)))
            .s()?;
    }
    let (plot, legend) = body.split_horizontally(WIDTH - LEGEND_W);
    Ok((plot, legend))
}

/// How a legend entry is drawn.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Swatch {
    /// A filled circle with an error bar.
    Point,
    /// A line with a circle.
    Line,
    /// A plain thick line.
    Plain,
}

pub(crate) struct Entry {
    pub label: String,
    pub color: RGBColor,
    pub swatch: Swatch,
    /// Which marker shape (see [`marker`]).
    pub shape: usize,
}

/// Breaks `label` into lines of at most `max` characters, at `, ` / ` (` / spaces when it can.
pub(crate) fn wrap(label: &str, max: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in label.split_inclusive([' ', ',']) {
        if !cur.is_empty() && cur.chars().count() + word.trim_end().chars().count() > max {
            lines.push(cur.trim_end().to_string());
            cur.clear();
        }
        cur.push_str(word);
        while cur.chars().count() > max {
            let head: String = cur.chars().take(max).collect();
            let tail: String = cur.chars().skip(max).collect();
            lines.push(head);
            cur = tail;
        }
    }
    if !cur.trim().is_empty() {
        lines.push(cur.trim_end().to_string());
    }
    lines
}

/// The legend panel: `heading`, entries (wrapped), then `footer` lines in grey.
pub(crate) fn legend(
    area: &Area,
    heading: &str,
    entries: &[Entry],
    footer: &[String],
) -> Result<(), String> {
    const LINE: i32 = 17;
    const CHARS: usize = 24;
    let (_, h) = area.dim_in_pixel();
    let mut y = 14;
    area.draw(&Text::new(heading.to_string(), (10, y), font(13)))
        .s()?;
    y += LINE + 6;
    let room = h as i32 - 12 - LINE * footer.len() as i32;
    for (i, e) in entries.iter().enumerate() {
        let lines = wrap(&e.label, CHARS);
        if y + LINE * lines.len() as i32 > room {
            area.draw(&Text::new(
                format!("… {} more", entries.len() - i),
                (34, y),
                font(12),
            ))
            .s()?;
            y += LINE;
            break;
        }
        let cy = y + 7;
        let style = ShapeStyle::from(&e.color).stroke_width(2);
        match e.swatch {
            Swatch::Point => {
                area.draw(&PathElement::new(vec![(20, cy - 7), (20, cy + 7)], style))
                    .s()?;
                marker(area, (20, cy), 4, e.shape, e.color)?;
            }
            Swatch::Line => {
                area.draw(&PathElement::new(vec![(8, cy), (30, cy)], style))
                    .s()?;
                marker(area, (19, cy), 3, e.shape, e.color)?;
            }
            Swatch::Plain => {
                area.draw(&PathElement::new(
                    vec![(8, cy), (30, cy)],
                    ShapeStyle::from(&e.color).stroke_width(3),
                ))
                .s()?;
            }
        }
        for (k, l) in lines.iter().enumerate() {
            area.draw(&Text::new(l.clone(), (36, y + k as i32 * LINE), font(12)))
                .s()?;
        }
        y += LINE * lines.len() as i32 + 4;
    }
    let mut fy = h as i32 - 10 - LINE * footer.len() as i32;
    fy = fy.max(y + 6);
    for l in footer {
        area.draw(&Text::new(
            l.clone(),
            (10, fy),
            font(11).color(&RGBColor(90, 90, 90)),
        ))
        .s()?;
        fy += LINE;
    }
    Ok(())
}

/// Colour and marker shape of the `k`-th series: ten colours, then the same colours with
/// squares, then triangles, so up to 30 series stay apart.
pub(crate) fn style(k: usize) -> (RGBColor, usize) {
    (color(k), (k / PALETTE.len()) % 3)
}

/// Draws marker `shape` (0 circle, 1 square, 2 triangle) of radius `r` at pixel `at`.
pub(crate) fn marker(
    area: &Area,
    at: (i32, i32),
    r: i32,
    shape: usize,
    c: RGBColor,
) -> Result<(), String> {
    let (x, y) = at;
    match shape {
        1 => area
            .draw(&Rectangle::new(
                [(x - r, y - r), (x + r, y + r)],
                c.filled(),
            ))
            .s(),
        2 => area
            .draw(&Polygon::new(
                vec![(x, y - r - 1), (x - r - 1, y + r), (x + r + 1, y + r)],
                c.filled(),
            ))
            .s(),
        _ => area.draw(&Circle::new((x, y), r, c.filled())).s(),
    }
}

/// The rows the method charts (pareto, flops, curves) show: each method's default row, and
/// every row of a method that has none. Variants (kid's strategies, alphas, ablations) have
/// their own charts and the table.
pub(crate) fn main_rows(s: &SettingSummary) -> Vec<usize> {
    let has_default = |m: &str| {
        s.rows
            .iter()
            .any(|r| r.id.is_method() && r.id.method == m && r.id.params.is_empty())
    };
    (0..s.rows.len())
        .filter(|&i| {
            let r = &s.rows[i];
            r.id.is_method() && (r.id.params.is_empty() || !has_default(&r.id.method))
        })
        .collect()
}

/// The legend footer lines of the method charts: the rows they leave out, and why.
pub(crate) fn rows_footer(s: &SettingSummary, shown: usize) -> Vec<String> {
    let all = s.rows.iter().filter(|r| r.id.is_method()).count();
    let main = main_rows(s).len();
    let mut out = Vec::new();
    if main > shown {
        out.push(format!("{} row(s) lack the figures", main - shown));
    }
    if all > main {
        out.push(format!("{} variant row(s): see the table", all - main));
    }
    out
}

/// Draws `pts` (error bar, marker, label) in pixels (`px` maps chart coordinates to them)
/// and returns their legend entries.
pub(crate) fn scatter<DB: DrawingBackend, CT: CoordTranslate>(
    root: &Area,
    chart: &ChartContext<DB, CT>,
    s: &SettingSummary,
    pts: &[pareto::Point],
    px: impl Fn(f64, f64) -> (i32, i32),
) -> Result<Vec<Entry>, String> {
    let mut markers = Vec::new();
    let mut entries = Vec::new();
    for p in pts {
        let (c, shape) = style(p.k);
        let at = px(p.x, p.y);
        let (top, bottom) = (px(p.x, p.hi).1, px(p.x, p.lo).1);
        let line = ShapeStyle::from(&c).stroke_width(2);
        root.draw(&PathElement::new(vec![(at.0, top), (at.0, bottom)], line))
            .s()?;
        for y in [top, bottom] {
            root.draw(&PathElement::new(vec![(at.0 - 5, y), (at.0 + 5, y)], line))
                .s()?;
        }
        marker(root, at, 5, shape, c)?;
        let label = s.rows[p.row].label.clone();
        markers.push(Marker {
            at,
            bar: (top, bottom),
            label: label.clone(),
            color: c,
        });
        entries.push(Entry {
            label,
            color: c,
            swatch: Swatch::Point,
            shape,
        });
    }
    place_labels(root, &markers, plot_bounds(chart.plotting_area()))?;
    Ok(entries)
}

/// A rectangle in pixels: (x0, y0, x1, y1).
type Rect = (i32, i32, i32, i32);

fn overlap(a: Rect, b: Rect) -> i32 {
    let w = (a.2.min(b.2) - a.0.max(b.0)).max(0);
    let h = (a.3.min(b.3) - a.1.max(b.1)).max(0);
    w * h
}

/// Estimated size in pixels of `text` at `size` px (DejaVu Sans is about 0.6 em a character).
fn text_size(text: &str, size: u32) -> (i32, i32) {
    (
        (text.chars().count() as f64 * size as f64 * 0.6).ceil() as i32,
        size as i32 + 2,
    )
}

/// A marker to label: its pixel position and the pixel extent of its error bar.
pub(crate) struct Marker {
    pub at: (i32, i32),
    pub bar: (i32, i32),
    pub label: String,
    pub color: RGBColor,
}

/// Draws each marker's label beside it, at the first of several places that stays inside
/// `bounds` and overlaps no marker, no error bar and no label already placed. A label that
/// fits nowhere is left out (the legend still names the point).
pub(crate) fn place_labels(root: &Area, markers: &[Marker], bounds: Rect) -> Result<(), String> {
    const SIZE: u32 = 12;
    let mut taken: Vec<Rect> = markers
        .iter()
        .map(|m| {
            (
                m.at.0 - 6,
                m.bar.0.min(m.at.1 - 6),
                m.at.0 + 6,
                m.bar.1.max(m.at.1 + 6),
            )
        })
        .collect();
    for m in markers {
        let (w, h) = text_size(&m.label, SIZE);
        let (x, y) = m.at;
        let mut candidates = Vec::new();
        for d in [0, 14, 28] {
            candidates.extend([
                (x + 9 + d, y - h / 2),
                (x - 9 - w - d, y - h / 2),
                (x + 9 + d, y - h - 4 - d),
                (x + 9 + d, y + 4 + d),
                (x - 9 - w - d, y - h - 4 - d),
                (x - 9 - w - d, y + 4 + d),
                (x - w / 2, m.bar.0 - h - 3 - d),
                (x - w / 2, m.bar.1 + 3 + d),
            ]);
        }
        let fits =
            |r: Rect| r.0 >= bounds.0 && r.1 >= bounds.1 && r.2 <= bounds.2 && r.3 <= bounds.3;
        let spot = candidates
            .into_iter()
            .map(|(cx, cy)| (cx, cy, cx + w, cy + h))
            .find(|r| fits(*r) && taken.iter().all(|t| overlap(*r, *t) == 0));
        if let Some(r) = spot {
            root.draw(&Text::new(
                m.label.clone(),
                (r.0, r.1),
                font(SIZE).color(&darker(m.color)),
            ))
            .s()?;
            taken.push(r);
        }
    }
    Ok(())
}

/// A darker shade of `c`, for text.
fn darker(c: RGBColor) -> RGBColor {
    RGBColor(
        (c.0 as f64 * 0.7) as u8,
        (c.1 as f64 * 0.7) as u8,
        (c.2 as f64 * 0.7) as u8,
    )
}

/// `(lo, hi)` of `values` padded by 8 % (at least `min_span` wide in all).
pub(crate) fn padded(values: impl IntoIterator<Item = f64>, min_span: f64) -> (f64, f64) {
    let v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max((min_span - (hi - lo)).max(0.0) / 2.0);
    (lo - pad, hi + pad)
}

/// The EX axis label: `EX on synth (%)` or `Average EX over 2 benchmarks (%)`.
pub(crate) fn ex_axis(s: &SettingSummary) -> String {
    match s.benchmarks.as_slice() {
        [one] => format!("EX on {one} (%)"),
        many => format!("Average EX over {} benchmarks (%)", many.len()),
    }
}

/// `bars: 95 % CI` for the legend footer.
pub(crate) fn ci_footer(opts: &ReportOptions) -> String {
    format!("bars: {:.0} % confidence interval", opts.level * 100.0)
}

/// The pixel rectangle of a chart's plotting area.
pub(crate) fn plot_bounds<DB: DrawingBackend, CT: CoordTranslate>(
    area: &DrawingArea<DB, CT>,
) -> Rect {
    let (x, y) = area.get_pixel_range();
    (x.start + 2, y.start + 2, x.end - 2, y.end - 2)
}

/// The executable `name` in a folder of PATH.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Converts `svg` to an 800 px wide PNG with `rsvg-convert`.
pub(crate) fn to_png(exe: &Path, svg: &Path, png: &Path) -> Result<(), String> {
    let out = std::process::Command::new(exe)
        .arg("-w")
        .arg(WIDTH.to_string())
        .arg(svg)
        .arg("-o")
        .arg(png)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The legend label of a family of kid rows: `kid (strategy=hard)`, `kid (other defaults)`.
pub(crate) fn family_label(others: &std::collections::BTreeMap<String, String>) -> String {
    if others.is_empty() {
        "kid (other defaults)".into()
    } else {
        format!("kid ({})", crate::summary::params_text(others, ", "))
    }
}
