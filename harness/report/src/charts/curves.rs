//! `curves.svg` (the paper's Fig. 6): EX on the fixed dev subset against the training step,
//! one line per method row (and benchmark), mean over the seeds that scored each step.

use plotters::prelude::*;

use super::{font, frame, legend, marker, padded, style, Area, Entry, Msg as _, Swatch};
use crate::summary::SettingSummary;

/// One line: the row index, its legend label and `(step, EX %)` points.
pub(crate) struct Line {
    /// Position among the chart's lines: its colour and marker.
    pub k: usize,
    pub row: usize,
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub seeds: usize,
}

pub(crate) fn lines(s: &SettingSummary) -> Vec<Line> {
    let multi = s.benchmarks.len() > 1;
    let mut out = Vec::new();
    for i in super::main_rows(s) {
        let r = &s.rows[i];
        for (bench, b) in &r.bench {
            if b.curve.is_empty() {
                continue;
            }
            out.push(Line {
                k: out.len(),
                row: i,
                label: if multi {
                    format!("{} · {bench}", r.label)
                } else {
                    r.label.clone()
                },
                points: b
                    .curve
                    .iter()
                    .map(|c| (c.step as f64, c.ex * 100.0))
                    .collect(),
                seeds: b.curve.iter().map(|c| c.seeds).max().unwrap_or(0),
            });
        }
    }
    out
}

pub(crate) fn draw(root: &Area, title: &str, s: &SettingSummary) -> Result<(), String> {
    let (plot, side) = frame(root, title)?;
    let ls = lines(s);
    let max_step = ls
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let (y0, y1) = padded(ls.iter().flat_map(|l| l.points.iter().map(|p| p.1)), 4.0);
    let mut chart = ChartBuilder::on(&plot)
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_step * 1.03, y0..y1)
        .s()?;
    chart
        .configure_mesh()
        .x_desc("Training step")
        .y_desc("EX on the dev subset (%)")
        .axis_desc_style(font(14))
        .label_style(font(12))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(238, 238, 238))
        .max_light_lines(1)
        .draw()
        .s()?;
    for l in &ls {
        let (c, shape) = style(l.k);
        chart
            .draw_series(LineSeries::new(
                l.points.iter().copied(),
                ShapeStyle::from(&c).stroke_width(2),
            ))
            .s()?;
        for &p in &l.points {
            marker(root, chart.backend_coord(&p), 3, shape, c)?;
        }
    }
    let entries: Vec<Entry> = ls
        .iter()
        .map(|l| Entry {
            label: l.label.clone(),
            color: style(l.k).0,
            swatch: Swatch::Line,
            shape: style(l.k).1,
        })
        .collect();
    let seeds = ls.iter().map(|l| l.seeds).max().unwrap_or(0);
    let mut footer = vec![format!("mean over up to {seeds} seed(s)")];
    let shown = ls
        .iter()
        .map(|l| l.row)
        .collect::<std::collections::BTreeSet<_>>();
    footer.extend(super::rows_footer(s, shown.len()));
    legend(&side, "Method", &entries, &footer)
}
