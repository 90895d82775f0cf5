//! The evidence as an SVG chart (plotters, SVG backend only), for people who are not
//! engineers: a title in plain words, the period in local time, one panel per comparison,
//! energy in MW (average power) or kWh, the flagged period shaded and every line named in a
//! legend.

use chrono::{DateTime, FixedOffset, Utc};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::model::{Evidence, Panel, Quantity};

const WIDTH: u32 = 1000;
const HEADER: u32 = 84;
const PANEL: u32 = 340;
const LINE: u32 = 22;
const FONT: &str = "sans-serif";
/// Characters per line of the explanation under the panels.
const WRAP: usize = 130;

/// Colours of the measured series, in order; reference lines are dark grey and dashed.
const PALETTE: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];
const REFERENCE: RGBColor = RGBColor(70, 70, 70);
const FLAGGED: RGBColor = RGBColor(214, 39, 40);

/// How a panel's Wh values are shown.
struct Scale {
    /// Multiplies a stored value into the shown unit.
    factor: f64,
    /// The y axis's label.
    label: String,
}

fn interval_words(seconds: i64) -> String {
    match seconds {
        3600 => "hour".into(),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{} min", s / 60),
    }
}

fn scale(panel: &Panel) -> Scale {
    let largest = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.value))
        .chain(
            panel
                .band
                .iter()
                .flat_map(|b| b.points.iter().map(|p| p.high.abs().max(p.low.abs()))),
        )
        .map(f64::abs)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    match panel.quantity {
        Quantity::Percent => Scale {
            factor: 1.0,
            label: "% of the energy".into(),
        },
        Quantity::Register if largest >= 1e7 => Scale {
            factor: 1e-6,
            label: "MWh on the register".into(),
        },
        Quantity::Register => Scale {
            factor: 1e-3,
            label: "kWh on the register".into(),
        },
        Quantity::EnergyPerInterval => {
            let hours = panel.interval_seconds.max(1) as f64 / 3600.0;
            if largest / hours >= 1e6 {
                Scale {
                    factor: 1e-6 / hours,
                    label: format!(
                        "MW (average over each {})",
                        interval_words(panel.interval_seconds)
                    ),
                }
            } else {
                Scale {
                    factor: 1e-3,
                    label: format!("kWh per {}", interval_words(panel.interval_seconds)),
                }
            }
        }
    }
}

fn local(t: DateTime<Utc>, offset: FixedOffset, pattern: &str) -> String {
    t.with_timezone(&offset).format(pattern).to_string()
}

/// Time ticks on round local hours or days: at most about eight over `[x0, x1]` (seconds since
/// the epoch), and the pattern of their labels.
fn time_ticks(x0: f64, x1: f64, offset: FixedOffset) -> (Vec<f64>, &'static str) {
    const STEPS: [i64; 12] = [
        900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800, 1_209_600,
        2_419_200,
    ];
    let span = (x1 - x0).max(1.0);
    let step = STEPS
        .into_iter()
        .find(|s| span / *s as f64 <= 8.0)
        .unwrap_or(2_419_200);
    let shift = i64::from(offset.local_minus_utc());
    let first = (x0.ceil() as i64 + shift).div_euclid(step) * step - shift;
    let first = if (first as f64) < x0 {
        first + step
    } else {
        first
    };
    let ticks = (0..)
        .map(|i| (first + i * step) as f64)
        .take_while(|t| *t <= x1)
        .collect();
    (
        ticks,
        if step >= 86_400 {
            "%d %b"
        } else {
            "%d %b %H:%M"
        },
    )
}

/// A time axis in seconds since the epoch whose labels fall on the given ticks.
struct TimeAxis {
    from: f64,
    to: f64,
    ticks: Vec<f64>,
}

impl Ranged for TimeAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = (value - self.from) / (self.to - self.from);
        let share = if share.is_finite() { share } else { 0.0 };
        limit.0 + ((limit.1 - limit.0) as f64 * share).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.from..self.to
    }
}

/// Greedy word wrap at `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Runs of consecutive present values, as (x, y) in chart units.
fn runs(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (x, y) in points {
        match y {
            Some(y) if y.is_finite() => current.push((*x, *y)),
            _ => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type Failure = Box<dyn std::error::Error>;

fn x_of(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64
}

fn draw_panel(
    area: &Area<'_>,
    evidence: &Evidence,
    panel: &Panel,
    offset: FixedOffset,
) -> Result<(), Failure> {
    let scale = scale(panel);
    let (x0, mut x1) = (x_of(evidence.from), x_of(evidence.to));
    if x1 <= x0 {
        x1 = x0 + panel.interval_seconds.max(1) as f64;
    }
    let series: Vec<Vec<(f64, Option<f64>)>> = panel
        .series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .map(|p| (x_of(p.t), p.value.map(|v| v * scale.factor)))
                .collect()
        })
        .collect();
    let band: Vec<(f64, f64, f64)> = panel
        .band
        .iter()
        .flat_map(|b| b.points.iter())
        .map(|p| (x_of(p.t), p.low * scale.factor, p.high * scale.factor))
        .filter(|(_, l, h)| l.is_finite() && h.is_finite())
        .collect();
    let values = series
        .iter()
        .flat_map(|s| s.iter().filter_map(|(_, y)| *y))
        .chain(band.iter().flat_map(|(_, l, h)| [*l, *h]))
        .filter(|v| v.is_finite());
    let (low, high) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (y0, y1) = match panel.quantity {
        Quantity::Percent => (0.0, 115.0),
        _ => {
            let span = (high - low).max(1e-9);
            // Headroom on top, growing with the legend's rows, keeps the legend clear of the
            // lines.
            let rows = panel.series.len() + usize::from(panel.band.is_some()) + 1;
            let (below, above) = if high > low {
                (span * 0.05, span * (0.1 + 0.14 * rows as f64))
            } else {
                (1.0, 1.0)
            };
            (if low < 0.0 { low - below } else { 0.0 }, high + above)
        }
    };
    let x_desc = format!("Local time (UTC{})", evidence.tz);
    let (ticks, label_pattern) = time_ticks(x0, x1, offset);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 20).into_font())
        .margin(12)
        .margin_right(36)
        .x_label_area_size(52)
        .y_label_area_size(84)
        .build_cartesian_2d(
            TimeAxis {
                from: x0,
                to: x1,
                ticks,
            },
            y0..y1,
        )?;
    chart
        .configure_mesh()
        .y_labels(6)
        .x_desc(x_desc.as_str())
        .y_desc(scale.label.as_str())
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .x_label_formatter(&|x| match DateTime::from_timestamp(*x as i64, 0) {
            Some(t) => local(t, offset, label_pattern),
            None => String::new(),
        })
        .y_label_formatter(&|y| format!("{y}"))
        .max_light_lines(0)
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()?;
    let flagged_end = evidence.flagged.ended_at.map_or(x1, x_of).clamp(x0, x1);
    let flagged_start = x_of(evidence.flagged.started_at).clamp(x0, x1);
    if flagged_end > flagged_start {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(flagged_start, y0), (flagged_end, y1)],
                FLAGGED.mix(0.08).filled(),
            )))?
            .label("Flagged period")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], FLAGGED.mix(0.25).filled())
            });
    }
    if let Some(band_spec) = &panel.band {
        let mut labelled = false;
        for run in band_runs(&band) {
            let outline: Vec<(f64, f64)> = run
                .iter()
                .map(|(x, _, h)| (*x, *h))
                .chain(run.iter().rev().map(|(x, l, _)| (*x, *l)))
                .collect();
            let drawn = chart.draw_series(std::iter::once(Polygon::new(
                outline,
                RGBColor(150, 150, 150).mix(0.3).filled(),
            )))?;
            if !labelled {
                drawn.label(band_spec.label.as_str()).legend(|(x, y)| {
                    Rectangle::new(
                        [(x, y - 5), (x + 16, y + 5)],
                        RGBColor(150, 150, 150).mix(0.4).filled(),
                    )
                });
                labelled = true;
            }
        }
    }
    let mut colour = 0;
    for (spec, points) in panel.series.iter().zip(&series) {
        let style = if spec.reference {
            REFERENCE.stroke_width(2)
        } else {
            let c = PALETTE[colour % PALETTE.len()];
            colour += 1;
            c.stroke_width(2)
        };
        for (i, run) in runs(points).into_iter().enumerate() {
            let drawn = if spec.reference {
                chart.draw_series(DashedLineSeries::new(run, 6, 4, style))?
            } else {
                chart.draw_series(LineSeries::new(run, style))?
            };
            if i == 0 {
                drawn
                    .label(spec.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
            }
        }
    }
    if !panel.has_data() {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            "No data is stored for this period",
            (w as i32 / 2, h as i32 / 2),
            (FONT, 18)
                .into_font()
                .color(&RGBColor(120, 120, 120))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    } else {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()?;
    }
    Ok(())
}

/// Runs of consecutive band points (no gap longer than twice the usual spacing).
fn band_runs(band: &[(f64, f64, f64)]) -> Vec<Vec<(f64, f64, f64)>> {
    let spacing = band
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .fold(f64::INFINITY, f64::min);
    let mut out: Vec<Vec<(f64, f64, f64)>> = Vec::new();
    for point in band {
        match out.last_mut() {
            Some(run) if run.last().is_some_and(|p| point.0 - p.0 <= spacing * 2.0) => {
                run.push(*point)
            }
            _ => out.push(vec![*point]),
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Draws `evidence` as an SVG document, local times at `offset` (whose label is in
/// `evidence.tz`).
pub fn svg(evidence: &Evidence, offset: FixedOffset) -> Result<String, Failure> {
    let panels = evidence.panels.len() as u32;
    let explanation = wrap(&evidence.explanation, WRAP);
    let footer_lines = (explanation.len() + evidence.notes.len()) as u32;
    let height = HEADER + PANEL * panels.max(1) + LINE * footer_lines + 16;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (header, rest) = root.split_vertically(HEADER);
        // A long title (a farm's name) gets a smaller font rather than being cut.
        let title_size = match evidence.title.chars().count() {
            0..=60 => 28,
            61..=75 => 24,
            _ => 20,
        };
        header.draw(&Text::new(
            evidence.title.as_str(),
            (20, 14),
            (FONT, title_size).into_font().style(FontStyle::Bold),
        ))?;
        let subtitle = format!(
            "From {} to {}, local time (UTC{}). Shaded: the flagged period, from {}{}.",
            local(evidence.from, offset, "%d %b %Y %H:%M"),
            local(evidence.to, offset, "%d %b %Y %H:%M"),
            evidence.tz,
            local(evidence.flagged.started_at, offset, "%d %b %H:%M"),
            evidence.flagged.ended_at.map_or_else(
                || " and still going on".to_owned(),
                |e| format!(" to {}", local(e, offset, "%d %b %H:%M"))
            ),
        );
        header.draw(&Text::new(
            subtitle,
            (20, 52),
            (FONT, 17).into_font().color(&RGBColor(80, 80, 80)),
        ))?;
        let (body, footer) = rest.split_vertically(PANEL * panels.max(1));
        if panels == 0 {
            body.draw(&Text::new(
                "No chart for this kind of anomaly: see its recorded evidence.",
                (20, 40),
                (FONT, 19).into_font(),
            ))?;
        } else {
            for (area, panel) in body
                .split_evenly((panels as usize, 1))
                .iter()
                .zip(&evidence.panels)
            {
                draw_panel(area, evidence, panel, offset)?;
            }
        }
        let lines = explanation
            .iter()
            .map(|l| (l.as_str(), RGBColor(40, 40, 40)))
            .chain(
                evidence
                    .notes
                    .iter()
                    .map(|n| (n.as_str(), RGBColor(150, 70, 0))),
            );
        for (i, (line, colour)) in lines.enumerate() {
            footer.draw(&Text::new(
                line,
                (20, 6 + LINE as i32 * i as i32),
                (FONT, 19).into_font().color(&colour),
            ))?;
        }
        root.present()?;
    }
    // A <title> makes the chart's subject known to screen readers and tooltips.
    if let Some(end) = out.find('>') {
        out.insert_str(
            end + 1,
            &format!("\n<title>{}</title>", escape(&evidence.title)),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::evidence::model::{Flagged, Point};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn evidence(panels: Vec<Panel>) -> Evidence {
        Evidence {
            anomaly: "an_1".into(),
            kind: "diversion".into(),
            title: "Energy went missing on feeder <F-1>".into(),
            explanation: String::new(),
            summary: None,
            from: at("2025-10-01T00:00:00Z"),
            to: at("2025-10-01T04:00:00Z"),
            flagged: Flagged {
                started_at: at("2025-10-01T02:00:00Z"),
                ended_at: None,
            },
            tz: "+05:00".into(),
            panels,
            notes: vec!["a note".into()],
        }
    }

    #[test]
    fn a_chart_names_its_series_and_speaks_local_time() {
        let points: Vec<Point> = (0..16)
            .map(|i| Point {
                t: at("2025-10-01T00:00:00Z") + chrono::Duration::minutes(15 * i),
                value: (i != 5).then_some(15_000_000.0),
            })
            .collect();
        let panel = Panel::new("Energy in", Quantity::EnergyPerInterval, 900).with(
            "input_wh",
            "Energy in (its input meter)",
            points,
        );
        let offset = FixedOffset::east_opt(5 * 3600).expect("offset");
        let svg = svg(&evidence(vec![panel]), offset).expect("drawn");
        assert!(svg.contains("Energy in (its input meter)"), "{svg}");
        assert!(svg.contains("MW (average over each 15 min)"));
        assert!(svg.contains("Local time (UTC+05:00)"));
        assert!(svg.contains("<title>Energy went missing on feeder &lt;F-1&gt;</title>"));
        // 15 MWh per 15 minutes is 60 MW; the gap splits the line in two (plus its legend).
        let blue = svg
            .lines()
            .filter(|l| l.starts_with("<polyline") && l.contains("stroke=\"#1F77B4\""))
            .count();
        assert_eq!(blue, 3, "{svg}");
        assert!(
            svg.contains("01 Oct 06:00"),
            "local labels on round hours: {svg}"
        );
        assert!(!svg.contains("05:53"));
    }

    #[test]
    fn an_empty_panel_says_so() {
        let panel = Panel::new("Nothing", Quantity::Percent, 900).with("x", "x", Vec::new());
        let svg = svg(
            &evidence(vec![panel]),
            FixedOffset::east_opt(0).expect("utc"),
        )
        .expect("drawn");
        assert!(svg.contains("No data is stored for this period"));
        let none = svg_of_nothing();
        assert!(none.contains("No chart for this kind"));
    }

    #[test]
    fn ticks_fall_on_round_local_times() {
        let offset = FixedOffset::east_opt(5 * 3600).expect("offset");
        let x0 = x_of(at("2025-10-01T00:07:00Z"));
        let (ticks, pattern) = time_ticks(x0, x0 + 12.0 * 3600.0, offset);
        assert_eq!(pattern, "%d %b %H:%M");
        assert_eq!(ticks[0], x_of(at("2025-10-01T01:00:00Z")));
        assert!(ticks.len() <= 8 && ticks.windows(2).all(|w| w[1] - w[0] == 7200.0));
        let (days, pattern) = time_ticks(x0, x0 + 6.0 * 86_400.0, offset);
        assert_eq!(pattern, "%d %b");
        assert_eq!(days[0], x_of(at("2025-10-01T19:00:00Z")), "local midnight");
        assert_eq!(wrap("a bb ccc dd", 6), vec!["a bb", "ccc dd"]);
    }

    fn svg_of_nothing() -> String {
        svg(
            &evidence(Vec::new()),
            FixedOffset::east_opt(0).expect("utc"),
        )
        .expect("drawn")
    }
}
