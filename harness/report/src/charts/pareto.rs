//! `pareto.svg` (the paper's Fig. 1): average EX against training latency (× the baseline's
//! seconds per step), one point per method row with its interval, and the Pareto frontier
//! (no other row is both faster and better).

use plotters::prelude::*;

use super::{
    ci_footer, ex_axis, font, frame, legend, padded, rows_footer, Area, Entry, Msg as _, Swatch,
};
use crate::summary::SettingSummary;
use crate::ReportOptions;

/// A method row on the chart: latency ratio, EX and its interval in %.
pub(crate) struct Point {
    pub row: usize,
    /// Position among the chart's rows: its colour and marker.
    pub k: usize,
    pub x: f64,
    pub y: f64,
    pub lo: f64,
    pub hi: f64,
}

pub(crate) fn points(s: &SettingSummary) -> Vec<Point> {
    super::main_rows(s)
        .into_iter()
        .enumerate()
        .filter_map(|(k, i)| {
            let r = &s.rows[i];
            let l = r.latency.as_ref()?;
            let a = r.avg_ex?;
            Some(Point {
                row: i,
                k,
                x: l.mean,
                y: a.estimate * 100.0,
                lo: a.lo * 100.0,
                hi: a.hi * 100.0,
            })
        })
        .collect()
}

/// Indices of the points on the frontier, fastest first: each is better than every faster one.
pub(crate) fn frontier(points: &[Point]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        points[a]
            .x
            .total_cmp(&points[b].x)
            .then(points[b].y.total_cmp(&points[a].y))
    });
    let mut best = f64::NEG_INFINITY;
    let mut out = Vec::new();
    for i in order {
        if points[i].y > best {
            best = points[i].y;
            out.push(i);
        }
    }
    out
}

pub(crate) fn draw(
    root: &Area,
    title: &str,
    s: &SettingSummary,
    opts: &ReportOptions,
) -> Result<(), String> {
    let (plot, side) = frame(root, title)?;
    let pts = points(s);
    let front = frontier(&pts);
    let (x0, x1) = padded(pts.iter().map(|p| p.x), 0.6);
    let (y0, y1) = padded(pts.iter().flat_map(|p| [p.lo, p.hi]), 4.0);
    let mut chart = ChartBuilder::on(&plot)
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .s()?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "Training latency (× {} seconds per step)",
            opts.baseline
        ))
        .y_desc(ex_axis(s))
        .axis_desc_style(font(14))
        .label_style(font(12))
        .x_label_formatter(&|x| format!("{x:.1}×"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(238, 238, 238))
        .max_light_lines(1)
        .draw()
        .s()?;
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(LineSeries::new(
            front.iter().map(|&i| (pts[i].x, pts[i].y)),
            ShapeStyle::from(&grey).stroke_width(2),
        ))
        .s()?;
    let entries = super::scatter(root, &chart, s, &pts, |x, y| chart.backend_coord(&(x, y)))?;
    let mut entries = entries;
    entries.push(Entry {
        label: "Pareto frontier".into(),
        color: grey,
        swatch: Swatch::Plain,
        shape: 0,
    });
    let mut footer = vec![ci_footer(opts)];
    footer.extend(rows_footer(s, pts.len()));
    legend(&side, "Method", &entries, &footer)
}
