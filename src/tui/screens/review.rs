//! The Review screen: the match queue (to review, the review band,
//! auto-merged, decided) and the selected pair in full: what a decision
//! does to the customers, the two records field by field (their own values,
//! and the compared ones when they differ), the weights as a waterfall from
//! the prior to the final match weight, and the blocking rule. Decisions
//! are jobs; a reject that splits a customer and every bulk decision ask
//! first, showing what they will do.

use crate::pipeline::identity::steward::{
    self, CandidateDetail, QueueCounts, QueueFilter, QueueOrder, QueueRow,
};
use crate::store;
use crate::tui::app::{InputKind, Mode, Pending, Tab};
use crate::tui::format::{self, fit, plural};
use crate::tui::jobs::JobKind;
use crate::tui::keymap::{Action, Scope};
use crate::tui::paged::Window;
use crate::tui::screen::{Ctx, Jump, Screen, View};
use crate::tui::text::clean;
use crate::tui::widgets::{ACCENT, BAD, GOOD, Grid, NONE, WARN, block, draw_table, title_in};
use anyhow::Result;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Wrap};
use std::sync::mpsc::Receiver;

/// Rows of the queue fetched at a time: moving through them costs no query
/// (the queue is sorted by a score, so it pages by position).
pub const REVIEW_CHUNK: usize = 200;

/// A bulk decision: every pending pair with a probability in `lo..=hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandRequest {
    pub lo: f64,
    pub hi: f64,
    pub approve: bool,
}

impl BandRequest {
    /// Read "0.8-0.95 a" (or "a 0.8..0.95", "0.8 to 0.95 reject", ...).
    pub fn parse(text: &str) -> Result<BandRequest, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let verb = |w: &str| match w.to_lowercase().as_str() {
            "a" | "approve" => Some(true),
            "r" | "reject" => Some(false),
            _ => None,
        };
        let (approve, band) = match words.as_slice() {
            [first, rest @ ..] if verb(first).is_some() => (verb(first), rest),
            [rest @ .., last] if verb(last).is_some() => (verb(last), rest),
            all => (None, all),
        };
        let band = band.join(" ").replace("..", "-").replace(['–', '—'], "-");
        let band = band.replace(" to ", "-");
        let nums: Vec<Result<f64, _>> = band.split('-').map(|x| x.trim().parse::<f64>()).collect();
        let (lo, hi) = match nums.as_slice() {
            [Ok(lo), Ok(hi)] => (*lo, *hi),
            _ => {
                return Err(format!(
                    "{:?} is not a band: write two probabilities and a or r, e.g. 0.80-0.95 a",
                    text.trim()
                ));
            }
        };
        if !(0.0..=1.0).contains(&lo) || !(0.0..=1.0).contains(&hi) || lo > hi {
            return Err(format!(
                "{lo}-{hi}: probabilities go from 0 to 1, low first"
            ));
        }
        let Some(approve) = approve else {
            return Err("add a (approve) or r (reject) after the band, e.g. 0.80-0.95 a".into());
        };
        Ok(BandRequest { lo, hi, approve })
    }

    pub fn verb(&self) -> &'static str {
        if self.approve { "Approve" } else { "Reject" }
    }
}

/// The two records' own values: (left, right), each (column, value).
pub type OwnValues = (Vec<(String, String)>, Vec<(String, String)>);

/// The pairs a bulk decision would decide, read on a worker thread.
pub type BandPreview = Result<Vec<QueueRow>, String>;

/// A list the queue shows instead of the filter's: the pairs a search
/// found, or a customer's pending pairs (Esc goes back to the queue).
#[derive(Debug, Clone, PartialEq)]
pub struct Pinned {
    pub label: String,
    pub rows: Vec<QueueRow>,
}

/// The queue's rows: the pinned list's when there is one, else the filter's.
fn fetcher<'a>(
    conn: &'a rusqlite::Connection,
    filter: QueueFilter,
    order: QueueOrder,
    pinned: &'a Option<Pinned>,
) -> Box<dyn FnMut(u64, usize) -> Result<Vec<QueueRow>> + 'a> {
    match pinned {
        Some(p) => Box::new(move |offset, n| {
            Ok(p.rows
                .iter()
                .skip(offset as usize)
                .take(n)
                .cloned()
                .collect())
        }),
        None => {
            Box::new(move |offset, n| steward::queue(conn, filter, order, None, offset, n as u64))
        }
    }
}

/// The Review screen.
pub struct ReviewView {
    pub filter: QueueFilter,
    pub order: QueueOrder,
    pub counts: QueueCounts,
    pub list: Window<QueueRow>,
    /// The selected candidate in detail: (candidate id, detail or error).
    pub detail: Option<(i64, Result<CandidateDetail, String>)>,
    /// The two records' own values, (left, right), for the detail.
    pub own: OwnValues,
    /// Scroll of the candidate pane.
    pub detail_scroll: u16,
    /// A bulk decision whose pairs are being read on a worker thread.
    pub counting: Option<(BandRequest, Receiver<BandPreview>)>,
    /// The candidate a running decision is about.
    pub deciding: Option<i64>,
    /// A search's or a customer's pairs, shown instead of the filter's.
    pub pinned: Option<Pinned>,
    /// The selected pair's decision in force: what, who, when, why.
    pub decision: Option<steward::DecisionInfo>,
}

impl ReviewView {
    pub fn new(viewport: usize) -> ReviewView {
        ReviewView {
            filter: QueueFilter::default(),
            order: QueueOrder::default(),
            counts: QueueCounts::default(),
            list: Window::new(viewport, REVIEW_CHUNK),
            detail: None,
            own: Default::default(),
            detail_scroll: 0,
            counting: None,
            deciding: None,
            pinned: None,
            decision: None,
        }
    }

    /// The selected candidate's details, when they loaded.
    pub fn candidate(&self) -> Option<&CandidateDetail> {
        match &self.detail {
            Some((_, Ok(d))) => Some(d),
            _ => None,
        }
    }

    fn total(&self, conn: &rusqlite::Connection) -> Result<u64> {
        if let Some(p) = &self.pinned {
            return Ok(p.rows.len() as u64);
        }
        Ok(match self.filter {
            QueueFilter::Pending => self.counts.remaining,
            QueueFilter::AllReview => self.counts.reviewed + self.counts.remaining,
            QueueFilter::AutoMerged => self.counts.auto_merged,
            QueueFilter::Decided => crate::read::queue::decided_pairs(conn)?,
        })
    }

    /// Back to the first row (the filter or the order changed).
    fn reset(&mut self, cx: &mut Ctx) {
        let result = (|| -> Result<()> {
            let total = self.total(cx.conn)?;
            let mut fetch = fetcher(cx.conn, self.filter, self.order, &self.pinned);
            self.list.reset(total, &mut *fetch)
        })();
        cx.report(result);
        self.load_detail(cx);
    }

    /// Read the selected candidate's details when the selection changed
    /// (one lookup by primary key, and the two customers' sizes by index).
    pub fn load_detail(&mut self, cx: &mut Ctx) {
        let Some(id) = self.list.selected_row().map(|r| r.candidate_id) else {
            self.detail = None;
            return;
        };
        if self.detail.as_ref().is_some_and(|(d, _)| *d == id) {
            return;
        }
        let detail = steward::candidate(cx.conn, id).map_err(|e| format!("{e:#}"));
        self.own = match &detail {
            Ok(d) => (
                crate::read::records::values(cx.conn, &d.row.left_key).unwrap_or_default(),
                crate::read::records::values(cx.conn, &d.row.right_key).unwrap_or_default(),
            ),
            Err(_) => Default::default(),
        };
        self.decision = match &detail {
            Ok(d) => steward::decision_of(cx.conn, &d.row.left_key, &d.row.right_key)
                .ok()
                .flatten(),
            Err(_) => None,
        };
        self.detail = Some((id, detail));
        self.detail_scroll = 0;
    }

    /// Approve or reject the selected pair: a job (it re-clusters). A reject
    /// of a pair that is already one customer splits it: asked first.
    fn decide(&mut self, approve: bool, reason: String, cx: &mut Ctx) {
        let Some(row) = self.list.selected_row() else {
            cx.flash("no pair selected");
            return;
        };
        let kind = JobKind::Decide {
            left: row.left_key.clone(),
            right: row.right_key.clone(),
            approve,
            reason,
        };
        if !approve
            && let Some(d) = self.candidate()
            && d.left_customer == d.right_customer
        {
            let body = match steward::reject_preview(cx.conn, &d.row.left_key, &d.row.right_key) {
                Ok(p) => split_preview(&p),
                Err(e) => vec![format!("cannot preview the split: {e:#}")],
            };
            cx.open(Mode::confirm(
                format!(
                    "{} and {} are one customer now ({}). Rejecting the pair splits it:",
                    d.row.left_key,
                    d.row.right_key,
                    plural(d.left_records, "record", "records")
                ),
                body,
                Pending::Start(kind),
            ));
            return;
        }
        self.deciding = Some(row.candidate_id);
        cx.start(kind);
    }

    /// Where the cursor goes once candidate `id` is decided: in the "to
    /// review" list the pair has left and the next one took its place; in
    /// the other lists it stays, so move past it.
    pub fn after_decision(&mut self, id: i64, cx: &mut Ctx) {
        if self.filter != QueueFilter::Pending
            && self
                .list
                .selected_row()
                .is_some_and(|x| x.candidate_id == id)
        {
            self.update(Action::Down, cx);
        }
    }

    fn start_band_preview(&mut self, req: BandRequest, cx: &mut Ctx) {
        let (tx, rx) = std::sync::mpsc::channel();
        let db = cx.ws.db_path();
        std::thread::spawn(move || {
            let result = crate::tui::jobs::catch(|| {
                (|| -> Result<Vec<QueueRow>> {
                    let conn = store::open(&db)?;
                    let band = Some((req.lo, req.hi));
                    steward::queue(
                        &conn,
                        QueueFilter::Pending,
                        QueueOrder::Score,
                        band,
                        0,
                        u64::MAX >> 1,
                    )
                })()
                .map_err(|e| format!("{e:#}"))
            });
            let _ = tx.send(result);
        });
        self.counting = Some((req, rx));
        cx.flash(format!(
            "reading the pending pairs with probability {:.2}–{:.2}…",
            req.lo, req.hi
        ));
    }

    /// Take a finished band preview and ask for confirmation, showing the
    /// pairs. True when the screen changed.
    pub fn poll_band(&mut self, wait: Option<std::time::Duration>, cx: &mut Ctx) -> bool {
        let Some((req, rx)) = &self.counting else {
            return false;
        };
        let req = *req;
        let received = match wait {
            Some(w) => rx.recv_timeout(w).map_err(|e| match e {
                std::sync::mpsc::RecvTimeoutError::Timeout => false,
                std::sync::mpsc::RecvTimeoutError::Disconnected => true,
            }),
            None => rx
                .try_recv()
                .map_err(|e| matches!(e, std::sync::mpsc::TryRecvError::Disconnected)),
        };
        let result = match received {
            Ok(r) => r,
            Err(false) => return false,
            Err(true) => Err("the count stopped unexpectedly".into()),
        };
        self.counting = None;
        let band = format!("{:.2}–{:.2}", req.lo, req.hi);
        match result {
            Ok(rows) if rows.is_empty() => {
                cx.flash(format!("no pending pair has a probability in {band}"))
            }
            Ok(rows) => {
                let BandRequest { lo, hi, approve } = req;
                cx.open(Mode::confirm(
                    format!(
                        "{} {} with probability {band}? One decision: u undoes it whole.",
                        req.verb(),
                        plural(rows.len() as u64, "pending pair", "pending pairs")
                    ),
                    rows.iter().map(pair_line).collect(),
                    Pending::Start(JobKind::DecideBand { lo, hi, approve }),
                ));
            }
            Err(e) => cx.flash(format!("cannot read the band: {e}")),
        }
        true
    }

    fn jump_to_customer(&self, left: bool, cx: &mut Ctx) {
        match self.candidate() {
            Some(d) => {
                let id = if left {
                    &d.left_customer
                } else {
                    &d.right_customer
                };
                cx.goto(Tab::Customers, Some(Jump::Customer(id.clone())));
            }
            None => cx.flash("no pair selected"),
        }
    }
}

/// Pairs a search shows at most.
const SEARCH_LIMIT: u64 = 1000;

/// Read a pinned list again (after a decision): a search's pairs, or a
/// customer's pending ones.
fn repin(
    conn: &rusqlite::Connection,
    label: &str,
    filter: QueueFilter,
    order: QueueOrder,
) -> Result<Vec<QueueRow>> {
    if let Some(customer) = label.strip_prefix("pending of ") {
        return steward::pending_pairs_of(conn, customer);
    }
    let text = label
        .strip_prefix("matching ")
        .map(|t| t.trim_matches('"'))
        .unwrap_or(label);
    steward::find_pairs(conn, filter, order, text, SEARCH_LIMIT)
}

/// "0.912  crm:C1 Anna Meier  ↔  crm:C7 Anna Maier".
fn pair_line(r: &QueueRow) -> String {
    format!(
        "{:.3}  {} {}  ↔  {} {}",
        r.probability, r.left_key, r.left_name, r.right_key, r.right_name
    )
}

/// Which records go where when a pair that is one customer is rejected,
/// as the rejection itself would re-cluster them.
fn split_preview(p: &steward::RejectPreview) -> Vec<String> {
    if p.still_together {
        return vec![
            p.message.clone(),
            "A steward approval keeps them together: the rejection is recorded, nothing moves."
                .into(),
        ];
    }
    let mut out = Vec::new();
    let mut side = |title: String, records: &[steward::PreviewRecord]| {
        out.push(title);
        for r in records {
            out.push(format!("  {}  {}", r.key, r.description));
        }
    };
    side(
        format!(
            "{} keeps {}:",
            p.left_id_after,
            plural(p.left_side.len() as u64, "record", "records")
        ),
        &p.left_side,
    );
    side(
        format!(
            "{} gets {}:",
            p.right_id_after,
            plural(p.right_side.len() as u64, "record", "records")
        ),
        &p.right_side,
    );
    if !p.others.is_empty() {
        side(
            format!(
                "{} become customers of their own:",
                plural(p.others.len() as u64, "record", "records")
            ),
            &p.others,
        );
    }
    out
}

impl Screen for ReviewView {
    fn scope(&self) -> Scope {
        Scope::Review
    }

    fn update(&mut self, action: Action, cx: &mut Ctx) {
        let moved = {
            let mut fetch = fetcher(cx.conn, self.filter, self.order, &self.pinned);
            self.list.apply(&action, &mut *fetch)
        };
        match moved {
            Ok(true) => return self.load_detail(cx),
            Ok(false) => {}
            Err(e) => return cx.report(Err(e)),
        }
        match action {
            Action::Approve => self.decide(true, String::new(), cx),
            Action::Reject => self.decide(false, String::new(), cx),
            Action::ApproveWithReason | Action::RejectWithReason => {
                if self.list.selected_row().is_some() {
                    let approve = action == Action::ApproveWithReason;
                    cx.input(InputKind::Reason { approve }, "");
                } else {
                    cx.flash("no pair selected");
                }
            }
            Action::Skip => {
                let before = self.list.pos;
                self.update(Action::Down, cx);
                if self.list.pos == before {
                    cx.flash("that was the last pair of this list");
                }
            }
            Action::Undo => cx.start(JobKind::Undo),
            Action::Bulk => cx.input(InputKind::Band, ""),
            Action::CycleFilter => {
                let all = QueueFilter::ALL;
                let i = all.iter().position(|f| *f == self.filter).unwrap_or(0);
                self.filter = all[(i + 1) % all.len()];
                self.reset(cx);
            }
            Action::ToggleOrder => {
                self.order = match self.order {
                    QueueOrder::Uncertainty => QueueOrder::Score,
                    QueueOrder::Score => QueueOrder::Uncertainty,
                };
                self.reset(cx);
            }
            Action::ScrollDetail(d) => {
                self.detail_scroll = if d < 0 {
                    self.detail_scroll.saturating_sub(1)
                } else {
                    self.detail_scroll.saturating_add(1)
                }
            }
            Action::JumpLeft => self.jump_to_customer(true, cx),
            Action::JumpRight => self.jump_to_customer(false, cx),
            Action::Open => self.open_detail(cx),
            Action::Search => cx.input(InputKind::ReviewSearch, ""),
            _ => {}
        }
    }

    fn submit(&mut self, kind: InputKind, text: &str, cx: &mut Ctx) {
        match kind {
            InputKind::Reason { approve } => self.decide(approve, text.trim().to_string(), cx),
            InputKind::ReviewSearch => self.typed(kind, text, cx),
            InputKind::Band => match BandRequest::parse(text) {
                Ok(req) => self.start_band_preview(req, cx),
                Err(e) => {
                    cx.flash(e);
                    cx.input(InputKind::Band, text);
                }
            },
            _ => {}
        }
    }

    fn clear(&mut self, cx: &mut Ctx) -> bool {
        if self.pinned.take().is_some() {
            self.reset(cx);
            return true;
        }
        if (self.filter, self.order) == (QueueFilter::default(), QueueOrder::default()) {
            return false;
        }
        self.filter = QueueFilter::default();
        self.order = QueueOrder::default();
        self.reset(cx);
        true
    }

    /// Re-read the counts, the queue around the cursor and the candidate.
    fn refresh(&mut self, cx: &mut Ctx) -> Result<()> {
        self.counts = steward::queue_counts(cx.conn)?;
        if let Some(p) = &self.pinned {
            // A pinned list is re-read too: decided pairs leave it.
            let label = p.label.clone();
            self.pinned = Some(Pinned {
                rows: repin(cx.conn, &label, self.filter, self.order)?,
                label,
            });
        }
        let total = self.total(cx.conn)?;
        {
            let mut fetch = fetcher(cx.conn, self.filter, self.order, &self.pinned);
            self.list.reload(total, &mut *fetch)?;
        }
        self.detail = None;
        self.load_detail(cx);
        Ok(())
    }

    fn poll(&mut self, cx: &mut Ctx) -> bool {
        self.poll_band(None, cx)
    }

    fn waiting(&self) -> bool {
        self.counting.is_some()
    }

    fn resize(&mut self, cx: &mut Ctx) {
        let mut fetch = fetcher(cx.conn, self.filter, self.order, &self.pinned);
        let result = self.list.set_viewport(cx.viewport, &mut *fetch);
        drop(fetch);
        cx.report(result);
        self.load_detail(cx);
    }

    fn typed(&mut self, kind: InputKind, text: &str, cx: &mut Ctx) {
        if kind != InputKind::ReviewSearch {
            return;
        }
        let t = text.trim();
        if t.is_empty() {
            self.pinned = None;
        } else {
            match steward::find_pairs(cx.conn, self.filter, self.order, t, SEARCH_LIMIT) {
                Ok(rows) => {
                    self.pinned = Some(Pinned {
                        label: format!("matching {t:?}"),
                        rows,
                    })
                }
                Err(e) => return cx.flash(format!("search failed: {e:#}")),
            }
        }
        self.reset(cx);
    }

    fn arrive(&mut self, jump: &Jump, cx: &mut Ctx) {
        if let Jump::PairsOf(customer) = jump {
            match steward::pending_pairs_of(cx.conn, customer) {
                Ok(rows) => {
                    cx.flash(format!(
                        "{} of {customer} to review · Esc shows the whole queue",
                        plural(rows.len() as u64, "pair", "pairs")
                    ));
                    self.pinned = Some(Pinned {
                        label: format!("pending of {customer}"),
                        rows,
                    });
                    self.reset(cx);
                }
                Err(e) => cx.flash(format!("cannot read the pairs: {e:#}")),
            }
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, _view: &View) {
        let [head, main] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
        self.draw_head(frame, head);
        // Side by side when there is room, else the queue above the pair.
        let (list_area, detail_area) = if main.width >= 80 {
            let w = (main.width * 2 / 5).clamp(32, 56);
            let [l, r] =
                Layout::horizontal([Constraint::Length(w), Constraint::Min(30)]).areas(main);
            (l, r)
        } else {
            let h = (main.height / 3).max(5);
            let [t, b] = Layout::vertical([Constraint::Length(h), Constraint::Min(3)]).areas(main);
            (t, b)
        };
        self.draw_queue(frame, list_area);
        self.draw_candidate(frame, detail_area);
    }
}

fn order_label(order: QueueOrder) -> &'static str {
    match order {
        QueueOrder::Uncertainty => "by uncertainty",
        QueueOrder::Score => "by score",
    }
}

impl ReviewView {
    fn draw_head(&self, frame: &mut Frame, area: Rect) {
        let c = &self.counts;
        let head = format!(
            " {} reviewed · {} to review",
            format::count(c.reviewed),
            format::count(c.remaining)
        );
        let tail = format!(
            " · {} auto-merged · {} in force",
            format::count(c.auto_merged),
            plural(c.decisions, "decision", "decisions")
        );
        let mut list = format!("f {} · o {} ", self.filter.label(), order_label(self.order));
        if let Some((req, _)) = &self.counting {
            list = format!("reading {:.2}–{:.2}… · {list}", req.lo, req.hi);
        }
        let list_w = (format::width(&list) as u16 + 1).min(area.width / 2);
        let [left, right] =
            Layout::horizontal([Constraint::Min(10), Constraint::Length(list_w)]).areas(area);
        let room = (left.width as usize).saturating_sub(format::width(&head));
        let counters = Line::from(vec![Span::raw(head).bold(), Span::raw(fit(&tail, room))]);
        frame.render_widget(Paragraph::new(counters), left);
        frame.render_widget(
            Paragraph::new(fit(&list, list_w as usize))
                .right_aligned()
                .style(Style::new().fg(ACCENT).add_modifier(Modifier::BOLD)),
            right,
        );
    }

    fn draw_queue(&self, frame: &mut Frame, area: Rect) {
        let list = &self.list;
        if list.total == 0 {
            let c = &self.counts;
            let msg = if self.pinned.is_some() {
                "No pair here.\n\nEsc shows the whole queue."
            } else if c.reviewed + c.remaining + c.auto_merged == 0 {
                "No match candidates yet.\n\nThe Resolve step finds them: R runs the steps that are out of date."
            } else {
                "Nothing in this list.\n\nf shows another list."
            };
            frame.render_widget(
                Paragraph::new(msg)
                    .wrap(Wrap { trim: true })
                    .block(block(&format!("Queue: {}", self.filter.label()), true)),
                area,
            );
            return;
        }
        // Only the visible rows are drawn; the last line is the legend.
        let [table_area, legend] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
        let (rows, sel) = list.visible();
        let fit_rows = (table_area.height.saturating_sub(3) as usize).max(1);
        let skip = (sel + 1).saturating_sub(fit_rows).min(rows.len());
        let g = Grid::new(
            table_area.width,
            &[
                Constraint::Length(5),
                Constraint::Length(1),
                Constraint::Length(1),
                Constraint::Fill(1),
                Constraint::Fill(1),
            ],
        );
        let table_rows: Vec<Row> = rows[skip..]
            .iter()
            .take(fit_rows)
            .map(|r| {
                let (mark, color) = match r.decision.as_deref() {
                    Some("approve") => ("✓", GOOD),
                    Some("reject") => ("✗", BAD),
                    Some(_) => ("?", WARN),
                    None => (" ", Color::Reset),
                };
                let bridge = r.flags.contains("weak_bridge");
                Row::new(vec![
                    g.right(0, &format!("{:.3}", r.probability)),
                    g.right(1, mark).fg(color).bold(),
                    g.right(2, if bridge { "⚑" } else { " " }).fg(WARN),
                    g.text(3, &r.left_name),
                    g.text(4, &r.right_name),
                ])
            })
            .collect();

        let title = format!(
            "Queue: {} · {} of {}",
            self.pinned
                .as_ref()
                .map_or(self.filter.label().to_string(), |p| format!(
                    "{} · Esc: all",
                    clean(&p.label)
                )),
            format::count(list.pos + 1),
            format::count(list.total)
        );
        draw_table(
            frame,
            table_area,
            &g,
            g.header(&["prob", "", "", "left", "right"], &[0]),
            table_rows,
            &title,
            true,
            Some(sel - skip),
        );
        // The legend, shorter when the pane is narrow.
        let words = if legend.width >= 47 {
            [" approved ", " rejected ", " weak bridge ", " no value"]
        } else {
            [" ok ", " no ", " bridge ", " empty"]
        };
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::raw(" ✓").fg(GOOD).bold(),
                Span::raw(words[0]),
                Span::raw("✗").fg(BAD).bold(),
                Span::raw(words[1]),
                Span::raw("⚑").fg(WARN),
                Span::raw(words[2]),
                Span::raw(NONE).dim(),
                Span::raw(words[3]),
            ])),
            legend,
        );
    }

    fn draw_candidate(&self, frame: &mut Frame, area: Rect) {
        let d = match &self.detail {
            Some((_, Ok(d))) => d,
            Some((id, Err(e))) => {
                frame.render_widget(
                    Paragraph::new(format!("Cannot read candidate {id}: {}", clean(e)))
                        .wrap(Wrap { trim: true })
                        .fg(BAD)
                        .block(block("Candidate", false)),
                    area,
                );
                return;
            }
            None => {
                frame.render_widget(block("Candidate", false), area);
                return;
            }
        };
        let r = &d.row;
        let mut title = format!(
            "Candidate {} · {}",
            r.candidate_id,
            if r.band == "auto_merge" {
                "auto-merged".to_string()
            } else {
                format!("{} band", clean(&r.band))
            }
        );
        if r.flags.contains("weak_bridge") {
            title.push_str(" · ⚑ weak bridge");
        }
        match r.decision.as_deref() {
            Some("approve") => title.push_str(" · ✓ approved"),
            Some("reject") => title.push_str(" · ✗ rejected"),
            _ => {}
        }
        title.push_str(" · J/K scroll · Enter all");
        let outer = block(&title_in(&title, area.width), false);
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let mut lines = candidate_lines(d, &self.own, inner.width);
        if let Some(info) = &self.decision {
            lines.insert(1, decision_line(info, inner.width));
        }
        let max_scroll = (lines.len() as u16).saturating_sub(inner.height);
        frame.render_widget(
            Paragraph::new(lines).scroll((self.detail_scroll.min(max_scroll), 0)),
            inner,
        );
    }

    fn open_detail(&self, cx: &mut Ctx) {
        let Some(d) = self.candidate() else {
            return;
        };
        cx.detail(
            format!("Candidate {}", d.row.candidate_id),
            candidate_text(d, &self.own),
        );
    }
}

/// "✓ approved by steward on 2026-12-04 21:40 · bulk 3 · why: same person".
fn decision_line(info: &steward::DecisionInfo, width: u16) -> Line<'static> {
    let (mark, colour, verb) = match info.action.as_str() {
        "approve" => ("✓", GOOD, "approved"),
        "reject" => ("✗", BAD, "rejected"),
        _ => ("?", WARN, "decided"),
    };
    let mut text = format!(
        "{verb} by {} on {}",
        clean(&info.actor),
        format::time(&info.at)
    );
    if let Some(b) = info.bulk_id {
        text.push_str(&format!(" · bulk {b}"));
    }
    text.push_str(&if info.reason.is_empty() {
        " · no reason given".to_string()
    } else {
        format!(" · why: {}", clean(&info.reason))
    });
    Line::from(vec![
        Span::styled(format!("{mark} "), Style::new().fg(colour).bold()),
        Span::raw(fit(&text, (width as usize).saturating_sub(2))),
    ])
}

/// A record's own value of `field`, when it differs from the compared one.
fn own_value<'a>(own: &'a [(String, String)], field: &str) -> Option<&'a str> {
    own.iter()
        .find(|(f, _)| f == field)
        .map(|(_, v)| v.as_str())
}

/// The record's own value ("Köln"), with the compared one after it when
/// they differ beyond case, accents and punctuation ("Jon (john)").
fn shown_value(compared: Option<&str>, own: Option<&str>) -> String {
    let same = |a: &str, b: &str| {
        let f = |s: &str| crate::pipeline::identity::fuzzy::fold(s).replace(' ', "");
        f(a) == f(b)
    };
    match (own, compared) {
        (Some(o), Some(c)) if !same(o, c) => format!("{o} ({c})"),
        (Some(o), _) => o.to_string(),
        (None, Some(c)) => c.to_string(),
        (None, None) => NONE.to_string(),
    }
}

/// How a field's comparison level reads: agree, differ, missing, close.
fn level_style(level: &str) -> Style {
    match level {
        "exact" => Style::new().fg(GOOD),
        "different" => Style::new().fg(BAD),
        "no value" => Style::new().add_modifier(Modifier::DIM),
        _ => Style::new().fg(WARN),
    }
}

/// The candidate pane's lines: the merge, the records, the waterfall, the
/// blocking rule (scrolled with J / K).
fn candidate_lines(d: &CandidateDetail, own: &OwnValues, width: u16) -> Vec<Line<'static>> {
    let w = width as usize;
    let mut lines = vec![Line::from(vec![
        Span::raw("merge: ").bold(),
        Span::raw(fit(&clean(&merge_preview(d)), w.saturating_sub(7))),
    ])];
    lines.push(Line::from(""));
    let level_w = (w / 5).clamp(8, 20);
    let value_w = (w.saturating_sub(12 + level_w + 3) / 2).max(4);
    let cell = |s: &str, n: usize| format!("{:<n$}", fit(s, n));
    lines.push(
        Line::from(format!(
            "{} {} {} {}",
            cell("field", 12),
            cell(&clean(&d.row.left_key), value_w),
            cell(&clean(&d.row.right_key), value_w),
            cell("level", level_w)
        ))
        .bold(),
    );
    for c in &d.comparisons {
        for (field, level, left, right) in &c.members {
            let l = shown_value(left.as_deref(), own_value(&own.0, field));
            let r = shown_value(right.as_deref(), own_value(&own.1, field));
            lines.push(Line::from(vec![
                Span::raw(format!(
                    "{} {} {} ",
                    cell(&clean(field), 12),
                    cell(&clean(&l), value_w),
                    cell(&clean(&r), value_w)
                )),
                Span::styled(cell(&clean(level), level_w), level_style(level)),
            ]));
        }
    }
    lines.push(Line::from(""));
    lines.extend(waterfall(d, width));
    lines.push(Line::from(""));
    lines.push(Line::from(format!(
        "blocking: {}",
        fit(&clean(&d.blocking), w.saturating_sub(10))
    )));
    lines
}

/// The weights as a waterfall like Splink's: each bar starts where the
/// running total stood and ends where the comparison leaves it, from the
/// prior to the final match weight (green adds evidence, red removes it),
/// on one scale with the zero axis marked.
pub fn waterfall(d: &CandidateDetail, width: u16) -> Vec<Line<'static>> {
    const NAME: usize = 13;
    const VALUE: usize = 7;
    let width = width as usize;
    let bar_w = width
        .saturating_sub(NAME + 1 + VALUE + 1 + VALUE + 1)
        .max(8);
    let mut steps: Vec<(String, f64, String)> = vec![("prior".into(), d.prior, String::new())];
    for c in &d.comparisons {
        let note = if c.tf {
            format!("{} · tf", c.level)
        } else {
            c.level.clone()
        };
        steps.push((c.name.clone(), c.weight, note));
    }
    let mut points = vec![0.0];
    let mut total = 0.0;
    for (_, w, _) in &steps {
        total += w;
        points.push(total);
    }
    let lo = points.iter().copied().fold(0.0_f64, f64::min);
    let hi = points.iter().copied().fold(0.0_f64, f64::max);
    let span = (hi - lo).max(1e-9);
    let pos = |x: f64| (((x - lo) / span) * (bar_w - 1) as f64).round() as usize;
    let zero = pos(0.0);
    let bar = |from: f64, to: f64, colour: Color| -> Vec<Span<'static>> {
        let (a, b) = (pos(from.min(to)), pos(from.max(to)));
        let mut cells: Vec<Span> = Vec::new();
        for i in 0..bar_w {
            let s = if i >= a && i <= b && (to - from).abs() > 0.0 {
                Span::styled("█", Style::new().fg(colour))
            } else if i == zero {
                Span::raw("│").dim()
            } else {
                Span::raw(" ")
            };
            cells.push(s);
        }
        cells
    };
    let mut lines = vec![
        Line::from(format!(
            "{:<NAME$} {:<bar_w$} {:>VALUE$} {:>VALUE$}",
            "weights, bits",
            fit("running total from the prior →", bar_w),
            "weight",
            "total"
        ))
        .bold(),
    ];
    let mut run = 0.0;
    for (name, w, note) in &steps {
        let colour = if *w < 0.0 { BAD } else { GOOD };
        let mut spans = vec![Span::raw(format!("{:<NAME$} ", fit(&clean(name), NAME)))];
        spans.extend(bar(run, run + w, colour));
        run += w;
        spans.push(Span::raw(format!(" {w:>+VALUE$.2} {run:>+VALUE$.2}")));
        if !note.is_empty() {
            spans.push(Span::raw(format!("  {}", clean(note))).dim());
        }
        lines.push(Line::from(spans));
    }
    let mut spans = vec![Span::raw(format!("{:<NAME$} ", "match weight")).bold()];
    spans.extend(bar(0.0, d.row.match_weight, ACCENT));
    spans.push(
        Span::raw(format!(
            " {:>VALUE$} {:>+VALUE$.2}  p {:.3}",
            "", d.row.match_weight, d.row.probability
        ))
        .bold(),
    );
    lines.push(Line::from(spans));
    lines
}

/// What approving the pair does to the customers.
pub fn merge_preview(d: &CandidateDetail) -> String {
    if d.left_customer == d.right_customer {
        format!(
            "already one customer: {} ({})",
            d.left_customer,
            plural(d.left_records, "record", "records")
        )
    } else {
        format!(
            "{} ({}) + {} ({}) → one customer of {}",
            d.left_customer,
            plural(d.left_records, "record", "records"),
            d.right_customer,
            plural(d.right_records, "record", "records"),
            plural(d.left_records + d.right_records, "record", "records")
        )
    }
}

/// The whole candidate as text (Enter).
fn candidate_text(d: &CandidateDetail, own: &OwnValues) -> String {
    let r = &d.row;
    let mut body = format!(
        "band:         {}{}\ndecision:     {}\nprobability:  {:.4}\nmatch weight: {:+.2} = prior {:+.2} + evidence {:+.2}\nblocking:     {}\n\n",
        r.band,
        if r.flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", r.flags)
        },
        r.decision.as_deref().unwrap_or("none yet"),
        r.probability,
        r.match_weight,
        d.prior,
        d.weight,
        d.blocking,
    );
    body.push_str(&format!(
        "{} is in {} ({})\n{} is in {} ({})\n{}\n\ncomparisons:\n",
        r.left_key,
        d.left_customer,
        plural(d.left_records, "record", "records"),
        r.right_key,
        d.right_customer,
        plural(d.right_records, "record", "records"),
        merge_preview(d)
    ));
    for c in &d.comparisons {
        body.push_str(&format!(
            "  {:<14} {:>+7.2}  {}{}\n",
            c.name,
            c.weight,
            c.level,
            if c.tf { " (term frequency)" } else { "" }
        ));
        for (field, level, left, right) in &c.members {
            body.push_str(&format!(
                "      {field} · {level}\n        left:  {}\n        right: {}\n",
                shown_value(left.as_deref(), own_value(&own.0, field)),
                shown_value(right.as_deref(), own_value(&own.1, field))
            ));
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_values_show_with_the_compared_ones_when_they_differ() {
        assert_eq!(shown_value(Some("koln"), Some("Köln")), "Köln");
        assert_eq!(shown_value(Some("john"), Some("Jon")), "Jon (john)");
        assert_eq!(
            shown_value(Some("15035971012"), Some("+15035971012")),
            "+15035971012"
        );
        assert_eq!(shown_value(Some("anna"), Some("anna")), "anna");
        assert_eq!(shown_value(None, None), NONE);
    }

    #[test]
    fn bands_parse() {
        assert_eq!(
            BandRequest::parse("0.8-0.95 a"),
            Ok(BandRequest {
                lo: 0.8,
                hi: 0.95,
                approve: true
            })
        );
        assert!(BandRequest::parse("0.95-0.8 a").is_err());
        assert!(BandRequest::parse("0.8-0.9").is_err());
    }
}
