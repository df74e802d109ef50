//! `strategies.svg` (the paper's Fig. 4): EX of kid rows that differ only in the masking
//! `strategy`, one point with its interval per strategy, one series per family of the other
//! parameters.

use std::collections::BTreeMap;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    ci_footer, ex_axis, family_label, font, frame, legend, marker, padded, style, Area, Entry,
    Msg as _, Swatch,
};
use crate::summary::{families, SettingSummary};
use crate::ReportOptions;

/// Strategies in the paper's order; others follow as text.
const ORDER: [&str; 4] = ["random", "uniform", "hard", "easy"];

pub(crate) fn draw(
    root: &Area,
    title: &str,
    s: &SettingSummary,
    opts: &ReportOptions,
) -> Result<(), String> {
    let (plot, side) = frame(root, title)?;
    let fams = families(s, "strategy");
    let mut cats: Vec<String> = fams
        .iter()
        .flat_map(|(_, m)| m.iter().map(|(v, _)| v.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    cats.sort_by_key(|c| {
        (
            ORDER.iter().position(|o| o == c).unwrap_or(ORDER.len()),
            c.clone(),
        )
    });
    let index: BTreeMap<&str, usize> = cats
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let n = cats.len() as f64;
    let f = fams.len() as f64;
    let width = 0.5_f64.min(0.15 * f);
    let offset = |k: usize| {
        if fams.len() < 2 {
            0.0
        } else {
            -width / 2.0 + width * k as f64 / (f - 1.0)
        }
    };
    let values: Vec<f64> = fams
        .iter()
        .flat_map(|(_, m)| m.iter())
        .filter_map(|(_, i)| s.rows[*i].avg_ex)
        .flat_map(|a| [a.lo * 100.0, a.hi * 100.0])
        .collect();
    let (y0, y1) = padded(values, 4.0);
    let mut chart = ChartBuilder::on(&plot)
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.6..n - 0.4, y0..y1)
        .s()?;
    // Categories: no numeric x ticks; each strategy's name under its place on the axis.
    chart
        .configure_mesh()
        .x_labels(0)
        .disable_x_mesh()
        .x_desc("Masking strategy")
        .y_desc(ex_axis(s))
        .axis_desc_style(font(14))
        .label_style(font(12))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(238, 238, 238))
        .max_light_lines(1)
        .draw()
        .s()?;
    for (i, c) in cats.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64, y0));
        root.draw(&Text::new(
            c.clone(),
            (px, py + 8),
            font(13).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .s()?;
    }
    let mut entries = Vec::new();
    for (k, (others, members)) in fams.iter().enumerate() {
        let (c, shape) = style(k);
        let mut pts: Vec<(f64, f64, f64, f64)> = members
            .iter()
            .filter_map(|(v, i)| {
                let a = s.rows[*i].avg_ex?;
                Some((
                    index[v.as_str()] as f64 + offset(k),
                    a.estimate * 100.0,
                    a.lo * 100.0,
                    a.hi * 100.0,
                ))
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        for &(x, y, lo, hi) in &pts {
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    x,
                    lo,
                    y,
                    hi,
                    ShapeStyle::from(&c).stroke_width(2),
                    12,
                )))
                .s()?;
            marker(root, chart.backend_coord(&(x, y)), 6, shape, c)?;
        }
        entries.push(Entry {
            label: family_label(others),
            color: c,
            shape,
            swatch: Swatch::Point,
        });
    }
    legend(&side, "Series", &entries, &[ci_footer(opts)])
}
