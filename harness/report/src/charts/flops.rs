//! `flops.svg`: EX against estimated training FLOPs (log axis), one point per method row with
//! its interval.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::pareto::Point;
use super::{ci_footer, ex_axis, font, frame, legend, padded, rows_footer, Area, Msg as _};
use crate::summary::SettingSummary;
use crate::ReportOptions;

/// Method rows with FLOPs: x = FLOPs, y = EX (%).
pub(crate) fn points(s: &SettingSummary) -> Vec<Point> {
    super::main_rows(s)
        .into_iter()
        .enumerate()
        .filter_map(|(k, i)| {
            let r = &s.rows[i];
            let f = r.flops?;
            let a = r.avg_ex?;
            Some(Point {
                row: i,
                k,
                x: f,
                y: a.estimate * 100.0,
                lo: a.lo * 100.0,
                hi: a.hi * 100.0,
            })
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
    let pts = points(s);
    let lo = pts.iter().map(|p| p.x).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().map(|p| p.x).fold(f64::NEG_INFINITY, f64::max);
    // At least a factor 10 wide, padded by a factor 1.5 on either side.
    let mid = (lo * hi).sqrt();
    let span = (hi / lo).max(10.0).sqrt() * 1.5;
    let (x0, x1) = (mid / span, mid * span);
    let (y0, y1) = padded(pts.iter().flat_map(|p| [p.lo, p.hi]), 4.0);
    let mut chart = ChartBuilder::on(&plot)
        .margin(14)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
        .s()?;
    chart
        .configure_mesh()
        .x_desc("Estimated training compute (FLOPs, log scale)")
        .y_desc(ex_axis(s))
        .axis_desc_style(font(14))
        .label_style(font(12))
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .disable_x_mesh()
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(238, 238, 238))
        .max_light_lines(1)
        .draw()
        .s()?;
    // Decade grid by hand (plotters' log ticks repeat the decade): a line at each
    // m·10^e, labels at 1, 2 and 5.
    let grid = RGBColor(225, 225, 225);
    let mut e = x0.log10().floor() as i32;
    while 10f64.powi(e) <= x1 {
        for m in 1..=9 {
            let x = m as f64 * 10f64.powi(e);
            if x < x0 || x > x1 {
                continue;
            }
            let (px, top) = chart.backend_coord(&(x, y1));
            let (_, bottom) = chart.backend_coord(&(x, y0));
            let style = if m == 1 {
                ShapeStyle::from(&RGBColor(200, 200, 200))
            } else {
                ShapeStyle::from(&grid)
            };
            root.draw(&PathElement::new(vec![(px, top), (px, bottom)], style))
                .s()?;
            if [1, 2, 5].contains(&m) {
                root.draw(&PathElement::new(
                    vec![(px, bottom), (px, bottom + 5)],
                    BLACK,
                ))
                .s()?;
                root.draw(&Text::new(
                    format!("{m}e{e}"),
                    (px, bottom + 8),
                    font(12).pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .s()?;
            }
        }
        e += 1;
    }
    let entries = super::scatter(root, &chart, s, &pts, |x, y| chart.backend_coord(&(x, y)))?;
    let mut footer = vec![
        ci_footer(opts),
        "FLOPs: 2·params·tokens forward,".to_string(),
        "3× that with backward".to_string(),
    ];
    footer.extend(rows_footer(s, pts.len()));
    legend(&side, "Method", &entries, &footer)
}
