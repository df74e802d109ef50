//! `alpha.svg` (the paper's Fig. 5): EX of kid rows that differ only in `alpha` (the fraction
//! of target tokens masked; absent = 0.2), a line with intervals per family of the other
//! parameters.

use plotters::prelude::*;

use super::{
    ci_footer, ex_axis, family_label, font, frame, legend, marker, padded, style, Area, Entry,
    Msg as _, Swatch,
};
use crate::summary::{families, SettingSummary};
use crate::ReportOptions;

/// Per family: its label and `(alpha, EX, lo, hi)` in %, sorted by alpha.
type Series = (String, Vec<(f64, f64, f64, f64)>);

fn series(s: &SettingSummary) -> Vec<Series> {
    families(s, "alpha")
        .into_iter()
        .map(|(others, members)| {
            let mut pts: Vec<(f64, f64, f64, f64)> = members
                .iter()
                .filter_map(|(v, i)| {
                    let x = v.trim().parse::<f64>().ok()?;
                    let a = s.rows[*i].avg_ex?;
                    Some((x, a.estimate * 100.0, a.lo * 100.0, a.hi * 100.0))
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (family_label(&others), pts)
        })
        .collect()
}

pub(crate) fn draw(
    root: &Area,
    title: &str,
    s: &SettingSummary,
    opts: &ReportOptions,
) -> Result<(), String> {
    let (plot, side) = frame(root, title)?;
    let ser = series(s);
    let mut xs: Vec<f64> = ser
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let (x0, x1) = padded(xs.iter().copied(), 0.1);
    let (y0, y1) = padded(
        ser.iter()
            .flat_map(|(_, p)| p.iter().flat_map(|q| [q.2, q.3])),
        4.0,
    );
    let mut chart = ChartBuilder::on(&plot)
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .s()?;
    chart
        .configure_mesh()
        .x_desc("alpha (fraction of target tokens masked)")
        .y_desc(ex_axis(s))
        .axis_desc_style(font(14))
        .label_style(font(12))
        .x_labels(8)
        .x_label_formatter(&|x| format!("{x:.2}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(238, 238, 238))
        .max_light_lines(1)
        .draw()
        .s()?;
    let mut entries = Vec::new();
    for (k, (label, pts)) in ser.iter().enumerate() {
        let (c, shape) = style(k);
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                ShapeStyle::from(&c).stroke_width(2),
            ))
            .s()?;
        for &(x, y, lo, hi) in pts {
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    x,
                    lo,
                    y,
                    hi,
                    ShapeStyle::from(&c).stroke_width(2),
                    10,
                )))
                .s()?;
            marker(root, chart.backend_coord(&(x, y)), 5, shape, c)?;
        }
        entries.push(Entry {
            label: label.clone(),
            color: c,
            shape,
            swatch: Swatch::Line,
        });
    }
    legend(&side, "Series", &entries, &[ci_footer(opts)])
}
