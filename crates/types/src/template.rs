//! Object-name templates as AIStore parses them (`cmn/cos/template.go`): bash-style ranges
//! (`obj-{0000..9999}`, `{0..100..10}`, several per template) and "at" style (`obj-@9999`).
//! Expansion is lazy — an odometer whose last range turns fastest — so a template of any size
//! costs no memory to walk.

/// Largest expansion a multi-object job accepts (`{1..1000000000}` is a 400, not a day of work).
pub const MAX_NAMES: u64 = 10_000_000;

/// One numeric range of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Range {
    start: u64,
    end: u64,
    step: u64,
    /// Zero-padding width.
    pad: usize,
}

impl Range {
    fn count(&self) -> u64 {
        (self.end - self.start) / self.step + 1
    }
}

/// A parsed range template: `prefixes[0] range[0] prefixes[1] range[1] … suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    texts: Vec<String>,
    ranges: Vec<Range>,
}

impl Template {
    /// Parses `text`; `Ok(None)` when it has no range syntax (it is then a prefix).
    pub fn parse(text: &str) -> Result<Option<Template>, String> {
        if text.contains('{') || text.contains('}') {
            return parse_bash(text).map(Some);
        }
        if text.contains('@') {
            return parse_at(text).map(Some);
        }
        if text.contains('%') {
            return Err(format!(
                "invalid template {text:?}: fmt-style ranges (%0Nd) are unbounded; use {{A..B}}"
            ));
        }
        Ok(None)
    }

    /// How many names the template expands to (saturating).
    pub fn count(&self) -> u64 {
        self.ranges
            .iter()
            .fold(1u64, |n, r| n.saturating_mul(r.count()))
    }

    /// Fails when the expansion exceeds `limit` names.
    pub fn check_limit(&self, limit: u64) -> Result<(), String> {
        let count = self.count();
        if count > limit {
            return Err(format!(
                "template expands to {count} names, more than the limit of {limit}"
            ));
        }
        Ok(())
    }

    /// Every name, in AIStore's order.
    pub fn names(&self) -> Names<'_> {
        Names {
            template: self,
            current: self.ranges.iter().map(|r| r.start).collect(),
            done: false,
        }
    }
}

/// The lazy expansion of a template.
pub struct Names<'a> {
    template: &'a Template,
    current: Vec<u64>,
    done: bool,
}

impl Iterator for Names<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        let t = self.template;
        let mut name = String::with_capacity(64);
        for (i, text) in t.texts.iter().enumerate() {
            name.push_str(text);
            if let (Some(range), Some(value)) = (t.ranges.get(i), self.current.get(i)) {
                name.push_str(&format!("{value:0width$}", width = range.pad));
            }
        }
        // Advance the odometer: the last range turns fastest.
        let mut k = t.ranges.len();
        loop {
            if k == 0 {
                self.done = true;
                break;
            }
            k -= 1;
            let range = &t.ranges[k];
            if self.current[k] + range.step <= range.end {
                self.current[k] += range.step;
                break;
            }
            self.current[k] = range.start;
        }
        Some(name)
    }
}

fn bash_err(text: &str, why: &str) -> String {
    format!("invalid 'bash' template {text:?}: {why}")
}

fn parse_bash(text: &str) -> Result<Template, String> {
    let mut texts = Vec::new();
    let mut ranges = Vec::new();
    let mut rest = text;
    loop {
        let open = rest.find('{');
        let close = rest.find('}');
        match (open, close) {
            (None, None) => {
                texts.push(rest.to_string());
                break;
            }
            (Some(o), Some(c)) if o < c => {
                let inner = &rest[o + 1..c];
                if inner.contains('{') {
                    return Err(bash_err(text, "unbalanced braces"));
                }
                texts.push(rest[..o].to_string());
                ranges.push(parse_bash_range(text, inner)?);
                rest = &rest[c + 1..];
            }
            _ => return Err(bash_err(text, "unbalanced braces")),
        }
    }
    Ok(Template { texts, ranges })
}

fn parse_bash_range(text: &str, inner: &str) -> Result<Range, String> {
    let parts: Vec<&str> = inner.split("..").collect();
    if parts.len() != 2 && parts.len() != 3 {
        return Err(bash_err(
            text,
            &format!("expecting {{start..end}} or {{start..end..step}}, got {{{inner}}}"),
        ));
    }
    let number = |s: &str| -> Result<i64, String> {
        s.parse::<i64>()
            .map_err(|e| format!("invalid template {text:?}: {s:?}: {e}"))
    };
    let start = number(parts[0])?;
    let end = number(parts[1])?;
    let step = match parts.get(2) {
        Some(s) => number(s)?,
        None => 1,
    };
    if start < 0 {
        return Err(bash_err(text, "negative start"));
    }
    if start > end {
        return Err(bash_err(text, "start is greater than end"));
    }
    if step <= 0 {
        return Err(bash_err(text, "step must be positive"));
    }
    Ok(Range {
        start: start as u64,
        end: end as u64,
        step: step as u64,
        pad: parts[0].len().min(parts[1].len()),
    })
}

fn parse_at(text: &str) -> Result<Template, String> {
    let mut texts = Vec::new();
    let mut ranges = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        texts.push(rest[..at].to_string());
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid 'at' template {text:?}: '@' must be followed by the last number"
            ));
        }
        let end: u64 = after[..digits]
            .parse()
            .map_err(|e| format!("invalid 'at' template {text:?}: {e}"))?;
        ranges.push(Range {
            start: 0,
            end,
            step: 1,
            pad: digits,
        });
        rest = &after[digits..];
    }
    texts.push(rest.to_string());
    Ok(Template { texts, ranges })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(t: &str) -> Vec<String> {
        Template::parse(t).unwrap().unwrap().names().collect()
    }

    #[test]
    fn bash_ranges_expand_like_an_odometer() {
        assert_eq!(
            expand("dir-{0..1}/obj-{07..08}"),
            [
                "dir-0/obj-07",
                "dir-0/obj-08",
                "dir-1/obj-07",
                "dir-1/obj-08"
            ]
        );
        assert_eq!(expand("a{0..10..5}b"), ["a0b", "a5b", "a10b"]);
        // padded to the shorter bound
        assert_eq!(expand("{01..100..50}"), ["01", "51"]);
        assert_eq!(expand("obj-{0000..0002..1}").len(), 3);
        assert_eq!(expand("obj-{0000..0002..1}")[2], "obj-0002");
        assert_eq!(expand("{5..5}"), ["5"]);
    }

    #[test]
    fn at_style() {
        assert_eq!(expand("a-@02"), ["a-00", "a-01", "a-02"]);
        let names = expand("a-@00010-b-@99");
        assert_eq!(names.len(), 11 * 100);
        assert_eq!(names[0], "a-00000-b-00");
        assert_eq!(names[101], "a-00001-b-01");
    }

    #[test]
    fn prefixes_and_errors() {
        assert_eq!(Template::parse("plain/prefix").unwrap(), None);
        for bad in [
            "x{9..0}",
            "x{-1..3}",
            "x{0..3..0}",
            "x{0..3..-1}",
            "x{0}",
            "x{0..1..2..3}",
            "x{a..z}",
            "x{0..1",
            "x0..1}",
            "x{{0..1}}",
            "x@y",
            "obj-%04d",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad} should not parse");
        }
        let e = Template::parse("x{9..0}").unwrap_err();
        assert!(e.starts_with("invalid 'bash' template"), "{e}");
    }

    #[test]
    fn counts_and_limits() {
        let t = Template::parse("obj-{1..1000000000}").unwrap().unwrap();
        assert_eq!(t.count(), 1_000_000_000);
        assert!(t.check_limit(MAX_NAMES).is_err());
        let t = Template::parse("{0..999}/{0..999}").unwrap().unwrap();
        assert_eq!(t.count(), 1_000_000);
        assert!(t.check_limit(MAX_NAMES).is_ok());
        let huge = Template::parse("{0..4294967295}{0..4294967295}{0..4294967295}")
            .unwrap()
            .unwrap();
        assert_eq!(huge.count(), u64::MAX);
        assert_eq!(t.names().count(), 1_000_000);
    }
}
