//! The report's plots, as SVG text: grouped bars per table, and a latency
//! CDF.

use crate::report::figure;

/// Grouped horizontal bars: one group per row, one bar per column, each
/// row scaled to its largest value (the numbers are printed on the bars).
pub(crate) fn plot(table: &serde_json::Value) -> String {
    const COLORS: [&str; 4] = ["#3b82f6", "#f97316", "#22c55e", "#a855f7"];
    let columns: Vec<&str> = table["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let rows = table["rows"].as_array().cloned().unwrap_or_default();
    let bar = 14.0;
    let group = bar * columns.len() as f64 + 12.0;
    let (left, width) = (260.0, 360.0);
    let height = 40.0 + group * rows.len() as f64 + 20.0 * columns.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
        left + width + 90.0,
        escape(table["section"].as_str().unwrap_or_default())
    );
    for (r, row) in rows.iter().enumerate() {
        let y0 = 32.0 + group * r as f64;
        let values = values(row);
        let max = values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f64::MIN_POSITIVE, f64::max);
        svg += &format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            left - 8.0,
            y0 + group / 2.0,
            escape(row["name"].as_str().unwrap_or_default())
        );
        for (c, v) in values.iter().enumerate() {
            // A figure a column does not have (null in the JSON).
            if !v.is_finite() {
                continue;
            }
            let y = y0 + bar * c as f64;
            let w = (v / max).max(0.0) * width;
            svg += &format!(
                "<rect x=\"{left}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
                bar - 2.0,
                COLORS[c % COLORS.len()],
                left + w + 4.0,
                y + bar - 4.0,
                figure(*v)
            );
        }
    }
    let legend = 40.0 + group * rows.len() as f64;
    for (c, name) in columns.iter().enumerate() {
        let y = legend + 20.0 * c as f64;
        svg += &format!(
            "<rect x=\"{left}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/>\n<text x=\"{}\" y=\"{}\">{}</text>\n",
            COLORS[c % COLORS.len()],
            left + 18.0,
            y + 10.0,
            escape(name)
        );
    }
    svg += "</svg>\n";
    svg
}
/// Percentile (x, 1–99) against value (y, linear from 0), one line per series.
pub(crate) fn cdf_plot(data: &serde_json::Value) -> String {
    const COLORS: [&str; 6] = [
        "#3b82f6", "#93c5fd", "#f97316", "#fdba74", "#22c55e", "#86efac",
    ];
    let series = data["series"].as_array().cloned().unwrap_or_default();
    let values: Vec<Vec<f64>> = series
        .iter()
        .map(|s| {
            s["values"]
                .as_array()
                .map(|v| v.iter().filter_map(|x| x.as_f64()).collect())
                .unwrap_or_default()
        })
        .collect();
    let max = values
        .iter()
        .flatten()
        .copied()
        .fold(f64::MIN_POSITIVE, f64::max);
    let (left, top, width, height) = (60.0, 30.0, 520.0, 300.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">latency CDF (ms by percentile)</text>\n<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"black\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">percentile</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n",
        left + width + 200.0,
        top + height + 40.0,
        top + height,
        left + width,
        top + height,
        top + height,
        left + width,
        top + height + 16.0,
        left - 4.0,
        top + 4.0,
        figure(max),
        left - 4.0,
        top + height
    );
    for (i, (s, v)) in series.iter().zip(&values).enumerate() {
        let points: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(k, y)| {
                format!(
                    "{:.1},{:.1}",
                    left + width * k as f64 / 98.0,
                    top + height - height * (y / max)
                )
            })
            .collect();
        let color = COLORS[i % COLORS.len()];
        svg += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\n<text x=\"{}\" y=\"{}\">{}</text>\n",
            points.join(" "),
            left + width + 16.0,
            top + 20.0 * i as f64,
            left + width + 34.0,
            top + 20.0 * i as f64 + 10.0,
            escape(s["name"].as_str().unwrap_or_default())
        );
    }
    svg += "</svg>\n";
    svg
}
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A table row's values, one per column: a missing figure (JSON null) is
/// NaN, so that the columns stay in place.
pub(crate) fn values(row: &serde_json::Value) -> Vec<f64> {
    row["values"]
        .as_array()
        .map(|v| v.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
        .unwrap_or_default()
}
