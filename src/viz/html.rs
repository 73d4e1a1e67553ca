//! The `index.html` beside the pictures: a title, a few notes, and sections
//! of figures (picture + short caption). A static page with no script and
//! no external resource, so it opens from the folder on any machine.

use crate::error::Result;
use std::path::Path;

/// One picture and its caption.
#[derive(Debug, Clone)]
pub struct Figure {
    /// File name, relative to the page.
    pub file: String,
    pub caption: String,
}

/// A heading and its figures.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub heading: String,
    pub figures: Vec<Figure>,
}

/// A whole page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub title: String,
    /// Paragraphs under the title (what was drawn from what, notes).
    pub notes: Vec<String>,
    pub sections: Vec<Section>,
    /// Files the page links to besides its pictures (e.g. inspect.json).
    pub links: Vec<String>,
}

/// `s` with the five HTML special characters escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

impl Page {
    /// The page as HTML.
    pub fn render(&self) -> String {
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
        h.push_str(&format!("<title>{}</title>\n", escape(&self.title)));
        h.push_str(
            "<style>body{font-family:sans-serif;max-width:1340px;margin:1em auto;padding:0 1em;color:#222}\
             figure{margin:1.5em 0}img{max-width:100%;height:auto;border:1px solid #ddd}\
             figcaption{margin-top:.4em;color:#444}</style>\n</head>\n<body>\n",
        );
        h.push_str(&format!("<h1>{}</h1>\n", escape(&self.title)));
        for n in &self.notes {
            h.push_str(&format!("<p>{}</p>\n", escape(n)));
        }
        if !self.links.is_empty() {
            let links: Vec<String> = self
                .links
                .iter()
                .map(|l| format!("<a href=\"{0}\">{0}</a>", escape(l)))
                .collect();
            h.push_str(&format!("<p>Numbers: {}</p>\n", links.join(", ")));
        }
        for s in &self.sections {
            if !s.heading.is_empty() {
                h.push_str(&format!("<h2>{}</h2>\n", escape(&s.heading)));
            }
            for f in &s.figures {
                h.push_str(&format!(
                    "<figure>\n<img src=\"{0}\" alt=\"{1}\">\n<figcaption>{1}</figcaption>\n</figure>\n",
                    escape(&f.file),
                    escape(&f.caption)
                ));
            }
        }
        h.push_str("</body>\n</html>\n");
        h
    }

    /// Writes the page to `path` (atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, self.render().as_bytes())
    }
}

/// The targets of every `src="..."` and `href="..."` in `html`, in order
/// (for checking that a page refers only to files that exist).
pub fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            if let Some(j) = rest.find('"') {
                out.push(rest[..j].replace("&amp;", "&"));
                rest = &rest[j..];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_figures_and_finds_their_references() {
        let page = Page {
            title: "a < b".into(),
            notes: vec!["\"quoted\" & more".into()],
            sections: vec![Section {
                heading: "row 1".into(),
                figures: vec![Figure {
                    file: "x.png".into(),
                    caption: "<b>".into(),
                }],
            }],
            links: vec!["inspect.json".into()],
        };
        let html = page.render();
        assert!(html.contains("<title>a &lt; b</title>"), "{html}");
        assert!(html.contains("&quot;quoted&quot; &amp; more"), "{html}");
        assert!(html.contains("<figcaption>&lt;b&gt;</figcaption>"), "{html}");
        assert_eq!(references(&html), vec!["x.png", "inspect.json"]);
    }
}
