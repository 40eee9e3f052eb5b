//! An environment's dependency graph and its waves as plain data, for `tier graph` and the
//! dashboard: Graphviz DOT, a Mermaid flowchart, or an SVG drawn here without a layout engine.
//!
//! An edge points from the dependent to its dependency ("frontend depends on backend" is
//! `frontend -> backend`), as cargo and Bazel draw dependency graphs. Every drawing puts the
//! first wave on the left, so the arrows point leftwards, towards what starts first.

use std::collections::HashMap;
use std::fmt::Write;

use serde::Serialize;

use crate::environment::Environment;

/// The services of one environment in the waves they roll out in, and who depends on whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Graph {
    pub environment: String,
    /// The waves in rollout order ([`Environment::rollout_waves`]), each in name order.
    pub waves: Vec<Vec<String>>,
    /// Every dependency, once, ordered by dependent then dependency.
    pub edges: Vec<Edge>,
}

/// `from` depends on `to`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
}

impl Graph {
    /// The graph of a resolved environment. A dependency on a service the environment does not
    /// have (resolving refuses one) draws no edge.
    pub fn of(environment: &Environment) -> Graph {
        let waves = environment
            .rollout_waves()
            .into_iter()
            .map(|wave| wave.into_iter().map(ToString::to_string).collect())
            .collect();
        let mut edges: Vec<Edge> = environment
            .services
            .iter()
            .flat_map(|(name, service)| {
                service
                    .depends_on
                    .iter()
                    .filter(|dependency| environment.services.contains_key(dependency.as_str()))
                    .map(move |dependency| Edge {
                        from: name.to_string(),
                        to: dependency.to_string(),
                    })
            })
            .collect();
        edges.sort();
        edges.dedup();
        Graph {
            environment: environment.name.to_string(),
            waves,
            edges,
        }
    }

    /// Graphviz DOT: one `rank=same` subgraph per wave, laid out right to left so that the
    /// first wave is on the left.
    pub fn to_dot(&self) -> String {
        let mut dot = format!("digraph {} {{\n", dot_id(&self.environment));
        dot.push_str("  rankdir=RL;\n");
        dot.push_str("  node [shape=box, style=rounded];\n");
        for (index, wave) in self.waves.iter().enumerate() {
            let _ = writeln!(dot, "  subgraph {} {{", dot_id(&wave_label(index)));
            dot.push_str("    rank=same;\n");
            for service in wave {
                let _ = writeln!(dot, "    {};", dot_id(service));
            }
            dot.push_str("  }\n");
        }
        for edge in &self.edges {
            let _ = writeln!(dot, "  {} -> {};", dot_id(&edge.from), dot_id(&edge.to));
        }
        dot.push_str("}\n");
        dot
    }

    /// A Mermaid flowchart, right to left so that the first wave is on the left, one subgraph
    /// per wave. Node ids are `svc_` and the name with `-` as `_`: a bare `-` can read as part
    /// of a link (`a--b`), and a service may be called `end`, which Mermaid reserves.
    pub fn to_mermaid(&self) -> String {
        // A JSON string is a valid YAML double-quoted scalar, escapes included.
        let title = serde_json::to_string(&self.environment).unwrap_or_default();
        let mut mermaid = format!("---\ntitle: {title}\n---\nflowchart RL\n");
        for (index, wave) in self.waves.iter().enumerate() {
            let _ = writeln!(
                mermaid,
                "  subgraph wave_{} [\"{}\"]",
                index + 1,
                wave_label(index)
            );
            for service in wave {
                let _ = writeln!(
                    mermaid,
                    "    {}[\"{}\"]",
                    mermaid_id(service),
                    mermaid_text(service)
                );
            }
            mermaid.push_str("  end\n");
        }
        for edge in &self.edges {
            let _ = writeln!(
                mermaid,
                "  {} --> {}",
                mermaid_id(&edge.from),
                mermaid_id(&edge.to)
            );
        }
        mermaid
    }

    /// A self-contained SVG: one column per wave, left to right, under its label; a rounded
    /// box per service, a `<g class="service" data-service=NAME>` with a `<title>` for a page
    /// to style and find; a curve per dependency ending in an arrow at the dependency. Sizes
    /// follow the counts and the longest name, so a graph of any size draws in one pass.
    pub fn to_svg(&self) -> String {
        let layout = Layout::of(self);
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="tier-graph" data-environment="{environment}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#,
            environment = xml_escape(&self.environment),
            width = layout.width,
            height = layout.height,
        );
        let _ = writeln!(
            svg,
            "<title>{}: dependency graph</title>",
            xml_escape(&self.environment)
        );
        svg.push_str(SVG_HEAD);
        for edge in &self.edges {
            layout.draw_edge(&mut svg, edge);
        }
        for (index, wave) in self.waves.iter().enumerate() {
            let _ = writeln!(
                svg,
                r#"<text class="wave-label" data-wave="{wave}" x="{x}" y="{y}">{label}</text>"#,
                wave = index + 1,
                x = layout.column_x(index) + layout.box_width / 2,
                y = MARGIN + WAVE_LABEL_HEIGHT / 2,
                label = wave_label(index),
            );
            for (row, service) in wave.iter().enumerate() {
                layout.draw_service(&mut svg, service, index, row);
            }
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// How the drawing is spaced, in SVG user units (pixels).
const MARGIN: usize = 24;
const WAVE_LABEL_HEIGHT: usize = 32;
const BOX_HEIGHT: usize = 36;
const ROW_GAP: usize = 16;
const COLUMN_GAP: usize = 80;
/// A generous width of one character of the 13px monospace font [`SVG_HEAD`] sets.
const CHARACTER_WIDTH: usize = 8;
const BOX_PADDING: usize = 16;
const MINIMUM_BOX_WIDTH: usize = 96;

/// The marker for arrowheads and the default look, which a page's stylesheet can override.
/// Edges come first in the document, so that the boxes are drawn over any edge they cross.
const SVG_HEAD: &str = r##"<defs>
<marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker>
</defs>
<style>
text { font-family: ui-monospace, monospace; font-size: 13px; text-anchor: middle; dominant-baseline: middle; }
.wave-label { fill: #666; }
.service rect { fill: #fff; stroke: #444; stroke-width: 1.5; }
.edge { fill: none; stroke: #888; stroke-width: 1.5; marker-end: url(#arrow); }
</style>
"##;

/// Where each service's box is.
struct Layout {
    box_width: usize,
    width: usize,
    height: usize,
    /// Each service's column (its wave) and row.
    place: HashMap<String, (usize, usize)>,
}

impl Layout {
    fn of(graph: &Graph) -> Layout {
        let longest = graph
            .waves
            .iter()
            .flatten()
            .map(|service| service.chars().count())
            .max()
            .unwrap_or(0);
        let box_width = (longest * CHARACTER_WIDTH + 2 * BOX_PADDING).max(MINIMUM_BOX_WIDTH);
        let columns = graph.waves.len();
        let rows = graph.waves.iter().map(Vec::len).max().unwrap_or(0);
        let width = 2 * MARGIN + columns * box_width + columns.saturating_sub(1) * COLUMN_GAP;
        let height =
            2 * MARGIN + WAVE_LABEL_HEIGHT + rows * BOX_HEIGHT + rows.saturating_sub(1) * ROW_GAP;
        let place = graph
            .waves
            .iter()
            .enumerate()
            .flat_map(|(column, wave)| {
                wave.iter()
                    .enumerate()
                    .map(move |(row, service)| (service.clone(), (column, row)))
            })
            .collect();
        Layout {
            box_width,
            width,
            height,
            place,
        }
    }

    fn column_x(&self, column: usize) -> usize {
        MARGIN + column * (self.box_width + COLUMN_GAP)
    }

    fn row_y(row: usize) -> usize {
        MARGIN + WAVE_LABEL_HEIGHT + row * (BOX_HEIGHT + ROW_GAP)
    }

    fn draw_service(&self, svg: &mut String, service: &str, column: usize, row: usize) {
        let (x, y) = (self.column_x(column), Layout::row_y(row));
        let name = xml_escape(service);
        let _ = writeln!(
            svg,
            r#"<g class="service" data-service="{name}" data-wave="{wave}"><title>{name}</title><rect x="{x}" y="{y}" width="{width}" height="{BOX_HEIGHT}" rx="6"/><text x="{text_x}" y="{text_y}">{name}</text></g>"#,
            wave = column + 1,
            width = self.box_width,
            text_x = x + self.box_width / 2,
            text_y = y + BOX_HEIGHT / 2,
        );
    }

    /// A cubic curve from the dependent's left side to the dependency's right side, or, when
    /// both are in one column (`ordering = false`), a loop out to the left between their left
    /// sides.
    fn draw_edge(&self, svg: &mut String, edge: &Edge) {
        let (Some(&from), Some(&to)) = (self.place.get(&edge.from), self.place.get(&edge.to))
        else {
            return;
        };
        let start_x = self.column_x(from.0);
        let start_y = Layout::row_y(from.1) + BOX_HEIGHT / 2;
        let end_y = Layout::row_y(to.1) + BOX_HEIGHT / 2;
        let (end_x, start_control, end_control) = if to.0 < from.0 {
            let end_x = self.column_x(to.0) + self.box_width;
            let bend = COLUMN_GAP / 2;
            (end_x, start_x - bend, end_x + bend)
        } else {
            // A loop stays inside the margin, which every column's left side is beyond.
            let end_x = self.column_x(to.0);
            (end_x, start_x - MARGIN, end_x - MARGIN)
        };
        let path = format!(
            "M {start_x} {start_y} C {start_control} {start_y}, {end_control} {end_y}, {end_x} {end_y}"
        );
        let _ = writeln!(
            svg,
            r#"<path class="edge" data-from="{}" data-to="{}" d="{path}"/>"#,
            xml_escape(&edge.from),
            xml_escape(&edge.to),
        );
    }
}

/// How a wave is labelled for people: counted from 1, as `tier apply` reports it.
fn wave_label(index: usize) -> String {
    format!("wave {}", index + 1)
}

/// A DOT quoted id: any text, with `"` and `\` escaped and a line break as `\n`.
fn dot_id(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => {}
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// A Mermaid node id for a service: unique, since service names have no `_`.
fn mermaid_id(service: &str) -> String {
    format!("svc_{}", service.replace('-', "_"))
}

/// Text inside a quoted Mermaid label: `"` and `#` as Mermaid's entity codes, a line break as
/// a space.
fn mermaid_text(text: &str) -> String {
    text.replace('#', "#35;")
        .replace('"', "#quot;")
        .replace(['\n', '\r'], " ")
}

/// Text made safe in XML and HTML, in an element or a quoted attribute (the dashboard's pages
/// escape through it too).
pub fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph written out by hand, its waves and edges as given.
    fn graph(environment: &str, waves: &[&[&str]], edges: &[(&str, &str)]) -> Graph {
        Graph {
            environment: environment.to_owned(),
            waves: waves
                .iter()
                .map(|wave| wave.iter().map(|name| (*name).to_owned()).collect())
                .collect(),
            edges: edges
                .iter()
                .map(|(from, to)| Edge {
                    from: (*from).to_owned(),
                    to: (*to).to_owned(),
                })
                .collect(),
        }
    }

    /// A diamond: `web` and `worker-2` depend on `api`, `api` on `db`; `web` also on `db`.
    fn diamond() -> Graph {
        graph(
            "dev",
            &[&["db"], &["api"], &["web", "worker-2"]],
            &[
                ("api", "db"),
                ("web", "api"),
                ("web", "db"),
                ("worker-2", "api"),
            ],
        )
    }

    /// Checks an XML document's shape without a parser: every tag closes in order, attribute
    /// values are quoted and free of `<`, and every `&` starts an entity. Answers the tags
    /// opened, by name.
    fn check_xml(document: &str) -> HashMap<String, usize> {
        let mut open: Vec<&str> = Vec::new();
        let mut counts = HashMap::new();
        let mut rest = document;
        while let Some(start) = rest.find('<') {
            check_text(&rest[..start]);
            let end = rest[start..].find('>').expect("a tag ends") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "`<` inside a tag: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "closing tag out of order");
            } else {
                let name = tag.split_whitespace().next().expect("a tag name");
                let name = name.trim_end_matches('/');
                *counts.entry(name.to_owned()).or_insert(0) += 1;
                assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
                check_text(tag);
                if !tag.ends_with('/') {
                    open.push(name);
                }
            }
            rest = &rest[end + 1..];
        }
        check_text(rest);
        assert!(open.is_empty(), "unclosed tags: {open:?}");
        counts
    }

    fn check_text(text: &str) {
        for (at, _) in text.match_indices('&') {
            let entity = &text[at..text[at..].find(';').map_or(text.len(), |end| at + end + 1)];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity),
                "a bare `&`: {entity}"
            );
        }
    }

    #[test]
    fn dot_of_a_diamond() {
        insta::assert_snapshot!(diamond().to_dot());
    }

    #[test]
    fn mermaid_of_a_diamond() {
        insta::assert_snapshot!(diamond().to_mermaid());
    }

    #[test]
    fn svg_of_a_diamond() {
        let svg = diamond().to_svg();
        let tags = check_xml(&svg);
        assert_eq!(tags["g"], 4, "one group per service");
        assert_eq!(tags["path"], 5, "one path per edge and one arrowhead");
        for service in ["db", "api", "web", "worker-2"] {
            assert!(
                svg.contains(&format!(r#"<g class="service" data-service="{service}""#)),
                "{service} has its group"
            );
        }
        insta::assert_snapshot!(svg);
    }

    #[test]
    fn mermaid_ids_avoid_reserved_words_and_link_syntax() {
        let mermaid = graph("dev", &[&["end"], &["a--b"]], &[("a--b", "end")]).to_mermaid();
        assert!(mermaid.contains("    svc_end[\"end\"]\n"), "{mermaid}");
        assert!(mermaid.contains("  svc_a__b --> svc_end\n"), "{mermaid}");
    }

    #[test]
    fn odd_characters_in_an_environment_name_are_escaped() {
        let odd = "a \"b\" <c> & 'd' \\ #e\nf";
        let graph = graph(odd, &[&["api"]], &[]);
        let dot = graph.to_dot();
        assert!(
            dot.starts_with("digraph \"a \\\"b\\\" <c> & 'd' \\\\ #e\\nf\" {\n"),
            "{dot}"
        );
        let mermaid = graph.to_mermaid();
        assert!(
            mermaid.starts_with("---\ntitle: \"a \\\"b\\\" <c> & 'd' \\\\ #e\\nf\"\n---\n"),
            "{mermaid}"
        );
        let svg = graph.to_svg();
        check_xml(&svg);
        assert!(
            svg.contains("<title>a &quot;b&quot; &lt;c&gt; &amp; &apos;d&apos; \\ #e\nf: dependency graph</title>"),
            "{svg}"
        );
    }

    #[test]
    fn an_empty_environment_draws_an_empty_graph() {
        let graph = graph("dev", &[], &[]);
        assert_eq!(
            graph.to_dot(),
            "digraph \"dev\" {\n  rankdir=RL;\n  node [shape=box, style=rounded];\n}\n"
        );
        assert!(!check_xml(&graph.to_svg()).contains_key("g"));
    }

    #[test]
    fn the_graph_of_the_sample_app() {
        let environment = crate::waves::tests::environment_with(&[
            ("backend".to_owned(), vec![]),
            (
                "frontend".to_owned(),
                vec!["backend".to_owned(), "backend".to_owned()],
            ),
            ("worker".to_owned(), vec!["backend".to_owned()]),
        ]);
        let graph = Graph::of(&environment);
        assert_eq!(
            graph,
            self::graph(
                "stage",
                &[&["backend"], &["frontend", "worker"]],
                &[("frontend", "backend"), ("worker", "backend")],
            ),
            "one edge per dependency, however often written"
        );
        insta::assert_json_snapshot!(graph, @r#"
        {
          "environment": "stage",
          "waves": [
            [
              "backend"
            ],
            [
              "frontend",
              "worker"
            ]
          ],
          "edges": [
            {
              "from": "frontend",
              "to": "backend"
            },
            {
              "from": "worker",
              "to": "backend"
            }
          ]
        }
        "#);
    }

    #[test]
    fn without_ordering_every_service_is_in_one_wave_and_edges_stay() {
        let mut environment = crate::waves::tests::environment_with(&[
            ("a".to_owned(), vec![]),
            ("b".to_owned(), vec!["a".to_owned()]),
        ]);
        environment.project.ordering = false;
        let graph = Graph::of(&environment);
        assert_eq!(graph.waves, [vec!["a", "b"]]);
        assert_eq!(graph.edges.len(), 1);
        let svg = graph.to_svg();
        check_xml(&svg);
        assert!(
            svg.contains(r#"d="M 24 126 C 0 126, 0 74, 24 74""#),
            "{svg}"
        );
    }

    #[test]
    fn a_chain_of_a_thousand_services_draws() {
        let services: Vec<(String, Vec<String>)> = (0..1000)
            .map(|at| {
                let depends_on = if at == 0 {
                    vec![]
                } else {
                    vec![format!("s{}", at - 1)]
                };
                (format!("s{at}"), depends_on)
            })
            .collect();
        let graph = Graph::of(&crate::waves::tests::environment_with(&services));
        assert_eq!(graph.waves.len(), 1000);
        assert_eq!(graph.edges.len(), 999);
        let svg = graph.to_svg();
        let tags = check_xml(&svg);
        assert_eq!(tags["g"], 1000);
        assert_eq!(graph.to_dot().matches(" -> ").count(), 999);
        assert_eq!(graph.to_mermaid().matches(" --> ").count(), 999);
    }
}
