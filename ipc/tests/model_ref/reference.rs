// The reference model of the calls' semantics (docs/ARCHITECTURE.md section 4): the operations,
// their strategies and the model that predicts every result. Included with `include!` by the
// single-node model test (`ipc/tests/model.rs`) and by the two-node one
// (`cli/tests/nodes_model.rs`), so both check against the same model; the includer brings the
// `use`s (`Errno`, `Timeout`, `notify_from`, proptest's prelude, `BTreeSet`).

/// The endpoints, in slot order (with the default DcConfig: 34 tasks, slots below 64 are system
/// processes, so `nr < 30` is a system process). Generation 0, so endpoint == nr.
const EPS: [i32; 5] = [-2, 0, 1, 2, 40];
const N: usize = EPS.len();
/// The short timeout.
const SHORT: Timeout = Timeout::Millis(3);

/// `m_type` of the messages each call sends (never in the notification range).
const M_SEND: i32 = 1;
const M_SENDREC: i32 = 2;
const M_SENDA: i32 = 3;
const M_REPLY: i32 = 4;

/// How messages name endpoint `i`: its index (as in `Op`) and its nr.
fn name(i: usize) -> String {
    format!("#{i} (nr {})", EPS[i])
}

fn is_sys(i: usize) -> bool {
    EPS[i] < 30
}

// ---------------------------------------------------------------------------------------------
// Operations

/// A timeout class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum T {
    NoWait,
    Short,
    Forever,
}

/// A receive's source: anyone, or one endpoint (an index into `EPS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Src {
    Any,
    From(usize),
}

/// One operation; endpoints are indices into `EPS` (0: SYSTASK -2, 1..=3: servers 0, 1, 2,
/// 4: user 40), and the issuer may be its own peer.
#[derive(Clone, Copy, Debug)]
enum Op {
    Send {
        from: usize,
        to: usize,
        t: T,
    },
    Sendrec {
        from: usize,
        to: usize,
        t: T,
    },
    Senda {
        from: usize,
        to: usize,
    },
    Notify {
        from: usize,
        to: usize,
    },
    Receive {
        by: usize,
        src: Src,
        t: T,
    },
    Rcvrqst {
        by: usize,
        t: T,
    },
    Reply {
        from: usize,
        to: usize,
    },
    Wakeup {
        from: usize,
        to: usize,
    },
    /// Answer a client waiting for a reply: the `pick`-th (modulo their number) client in
    /// `AwaitReply` whose server is idle gets that server's answer, made `how`. Resolved into a
    /// `Reply`, `Send` or `Sendrec` against the model's state (skipped if there is none): random
    /// endpoints rarely hit the one pair that a reply needs.
    Answer {
        pick: usize,
        how: How,
    },
}

/// How a server answers its client.
#[derive(Clone, Copy, Debug)]
enum How {
    Reply,
    Send,
    Sendrec(T),
}

impl Op {
    fn issuer(&self) -> usize {
        match *self {
            Op::Send { from, .. }
            | Op::Sendrec { from, .. }
            | Op::Senda { from, .. }
            | Op::Notify { from, .. }
            | Op::Reply { from, .. }
            | Op::Wakeup { from, .. } => from,
            Op::Receive { by, .. } | Op::Rcvrqst { by, .. } => by,
            Op::Answer { .. } => unreachable!("resolved before use"),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Op::Send { .. } => "send",
            Op::Sendrec { .. } => "sendrec",
            Op::Senda { .. } => "senda",
            Op::Notify { .. } => "notify",
            Op::Receive { src: Src::Any, .. } => "receive(ANY)",
            Op::Receive { .. } => "receive(src)",
            Op::Rcvrqst { .. } => "rcvrqst",
            Op::Reply { .. } => "reply",
            Op::Wakeup { .. } => "wakeup",
            Op::Answer { .. } => "answer",
        }
    }
}

fn ep() -> impl Strategy<Value = usize> {
    0..N
}

fn timeout_class() -> impl Strategy<Value = T> {
    prop_oneof![3 => Just(T::Forever), 1 => Just(T::NoWait), 1 => Just(T::Short)]
}

fn op() -> impl Strategy<Value = Op> {
    let src = prop_oneof![Just(Src::Any), ep().prop_map(Src::From)];
    prop_oneof![
        3 => (ep(), ep(), timeout_class()).prop_map(|(from, to, t)| Op::Send { from, to, t }),
        3 => (ep(), ep(), timeout_class()).prop_map(|(from, to, t)| Op::Sendrec { from, to, t }),
        2 => (ep(), ep()).prop_map(|(from, to)| Op::Senda { from, to }),
        2 => (ep(), ep()).prop_map(|(from, to)| Op::Notify { from, to }),
        6 => (ep(), src, timeout_class()).prop_map(|(by, src, t)| Op::Receive { by, src, t }),
        1 => (ep(), timeout_class()).prop_map(|(by, t)| Op::Rcvrqst { by, t }),
        3 => (ep(), ep()).prop_map(|(from, to)| Op::Reply { from, to }),
        1 => (ep(), ep()).prop_map(|(from, to)| Op::Wakeup { from, to }),
        3 => (any::<usize>(), prop_oneof![
            Just(How::Reply),
            Just(How::Send),
            timeout_class().prop_map(How::Sendrec),
        ])
            .prop_map(|(pick, how)| Op::Answer { pick, how }),
    ]
}

/// A sequence: single operations, and now and then a burst of `senda`s from one system process
/// to one endpoint (enough to fill its asynchronous envelopes).
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let burst =
        (0..N - 1, ep(), 2..=10usize).prop_map(|(from, to, n)| vec![Op::Senda { from, to }; n]);
    let group = prop_oneof![24 => op().prop_map(|o| vec![o]), 1 => burst];
    prop::collection::vec(group, 1..=36).prop_map(|g| g.concat())
}

// ---------------------------------------------------------------------------------------------
// The reference model

/// What a call returns, as compared: the error, or the message's source, type and tag
/// (`payload[0]`; `None` for a notification, whose payload is a timestamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Got {
    source: i32,
    m_type: i32,
    tag: Option<u64>,
}

type Expect = Result<Option<Got>, Errno>;

fn msg(from: usize, m_type: i32, tag: u64) -> Got {
    Got {
        source: EPS[from],
        m_type,
        tag: Some(tag),
    }
}

fn notification(from: usize) -> Got {
    Got {
        source: EPS[from],
        m_type: notify_from(EPS[from]),
        tag: None,
    }
}

/// What an endpoint's worker is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Idle,
    /// Blocked in `send`/`sendrec`, its message queued at `to`.
    Sending {
        to: usize,
    },
    /// In the receive half of a `sendrec` whose request `server` received.
    AwaitReply {
        server: usize,
    },
    /// Blocked in `receive(src)` or (`requests_only`) `rcvrqst`.
    Receiving {
        src: Src,
        requests_only: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Send,
    Sendrec,
    Async,
}

/// A message waiting in a receiver's queue.
#[derive(Clone, Copy, Debug)]
struct Queued {
    from: usize,
    to: usize,
    ticket: u64,
    kind: Kind,
    got: Got,
}

#[derive(Clone, Debug)]
struct Model {
    st: [St; N],
    queue: Vec<Queued>,
    /// Pending notifications of each endpoint, by notifier (index order is slot order).
    notify: [BTreeSet<usize>; N],
    woken: [bool; N],
    ticket: u64,
}

/// The model's prediction for one operation.
#[derive(Debug)]
struct Plan {
    issuer: usize,
    /// The timeout the call is made with.
    timeout: Timeout,
    /// `None`: the issuer stays blocked.
    result: Option<Expect>,
    /// Blocked endpoints the operation completes, with their results.
    others: Vec<(usize, Expect)>,
    /// Which special path the call takes (for the coverage report).
    note: Option<&'static str>,
}

impl Model {
    fn new() -> Model {
        Model {
            st: [St::Idle; N],
            queue: Vec::new(),
            notify: Default::default(),
            woken: [false; N],
            ticket: 0,
        }
    }

    /// What `x` is blocked on, as MINIX's `deadlock()` follows it: (peer, whether sending).
    fn blocked_on(&self, x: usize) -> Option<(usize, bool)> {
        match self.st[x] {
            St::Sending { to } => Some((to, true)),
            St::AwaitReply { server } => Some((server, false)),
            // A receiver with a notification pending from its source is not blocked: its
            // receive delivers it (unreachable here, where a notify completes an accepting
            // receiver at once; the fabric meets it when a notify races a deadlock check).
            St::Receiving {
                src: Src::From(s), ..
            } if !self.notify[x].contains(&s) => Some((s, false)),
            _ => None,
        }
    }

    /// Whether `me`, blocking (`sending` or receiving) on `first`, closes a cycle. A two-party
    /// chain of a sender and a receiver is a rendezvous, not a cycle.
    fn closes_cycle(&self, me: usize, first: usize, sending: bool) -> bool {
        let mut x = first;
        let mut group = 1;
        for _ in 0..=N {
            group += 1;
            let Some((next, x_sending)) = self.blocked_on(x) else {
                return false;
            };
            if next == me {
                return !(group == 2 && x_sending != sending);
            }
            x = next;
        }
        false
    }

    /// Whether `r` is blocked in a receive that takes this message (or notification) of `from`.
    fn accepts(&self, r: usize, from: usize, is_notification: bool) -> bool {
        match self.st[r] {
            St::Receiving { src, requests_only } => {
                (src == Src::Any || src == Src::From(from)) && !(is_notification && requests_only)
            }
            _ => false,
        }
    }

    /// The oldest message queued for `r` from `src`.
    fn oldest(&self, r: usize, src: Src) -> Option<usize> {
        self.queue
            .iter()
            .enumerate()
            .filter(|(_, q)| q.to == r && (src == Src::Any || src == Src::From(q.from)))
            .min_by_key(|(_, q)| q.ticket)
            .map(|(i, _)| i)
    }

    /// `r` takes queued message `i`: the sender's call moves on.
    fn take(&mut self, r: usize, i: usize, others: &mut Vec<(usize, Expect)>) -> Got {
        let q = self.queue.remove(i);
        match q.kind {
            Kind::Send => {
                self.st[q.from] = St::Idle;
                others.push((q.from, Ok(None)));
            }
            Kind::Sendrec => self.st[q.from] = St::AwaitReply { server: r },
            Kind::Async => {}
        }
        q.got
    }

    /// A `send`/`sendrec` that no receiver takes at once: NOWAIT fails, a cycle is refused,
    /// a short timeout expires, FOREVER queues it.
    fn block_sender(
        &mut self,
        from: usize,
        to: usize,
        kind: Kind,
        got: Got,
        t: T,
    ) -> (Timeout, Option<Expect>) {
        self.ticket += 1;
        match t {
            T::NoWait => (Timeout::NoWait, Some(Err(Errno::EDVSAGAIN))),
            _ if self.closes_cycle(from, to, true) => {
                (Timeout::Forever, Some(Err(Errno::EDVSLOCKED)))
            }
            T::Short => (SHORT, Some(Err(Errno::EDVSTIMEDOUT))),
            T::Forever => {
                self.queue.push(Queued {
                    from,
                    to,
                    ticket: self.ticket,
                    kind,
                    got,
                });
                self.st[from] = St::Sending { to };
                (Timeout::Forever, None)
            }
        }
    }

    /// A receive that finds nothing.
    fn block_receiver(
        &mut self,
        by: usize,
        src: Src,
        requests_only: bool,
        t: T,
    ) -> (Timeout, Option<Expect>) {
        match (t, src) {
            (T::NoWait, _) => (Timeout::NoWait, Some(Err(Errno::EDVSAGAIN))),
            (_, Src::From(s)) if self.closes_cycle(by, s, false) => {
                (Timeout::Forever, Some(Err(Errno::EDVSLOCKED)))
            }
            (T::Short, _) => (SHORT, Some(Err(Errno::EDVSTIMEDOUT))),
            (T::Forever, _) => {
                self.st[by] = St::Receiving { src, requests_only };
                (Timeout::Forever, None)
            }
        }
    }

    /// The concrete operation of `op` (an `Answer` names its endpoints only through the state);
    /// `None` if there is none.
    fn resolve(&self, op: &Op) -> Option<Op> {
        let Op::Answer { pick, how } = *op else {
            return Some(*op);
        };
        let waiting: Vec<(usize, usize)> = (0..N)
            .filter_map(|c| match self.st[c] {
                St::AwaitReply { server } if self.st[server] == St::Idle => Some((server, c)),
                _ => None,
            })
            .collect();
        let (from, to) = *waiting.get(pick % waiting.len().max(1))?;
        Some(match how {
            How::Reply => Op::Reply { from, to },
            How::Send => Op::Send {
                from,
                to,
                t: T::NoWait,
            },
            How::Sendrec(t) => Op::Sendrec { from, to, t },
        })
    }

    /// Apply `op` (resolved; its messages carry `tag`); `None` if its issuer is busy in a call.
    fn apply(&mut self, op: &Op, tag: u64) -> Option<Plan> {
        let issuer = op.issuer();
        if self.st[issuer] != St::Idle {
            return None;
        }
        let mut note = None;
        let mut others = Vec::new();
        let now = |r: Expect| (Timeout::Forever, Some(r));
        let (timeout, result) = match *op {
            Op::Send { from, to, t } => {
                let got = msg(from, M_SEND, tag);
                if !is_sys(from) {
                    now(Err(Errno::EDVSBADCALL))
                } else if to == from {
                    now(Err(Errno::EDVSBADDEST))
                } else if self.st[to] == (St::AwaitReply { server: from }) {
                    // The send is the reply the client waits for.
                    note = Some("as the reply");
                    self.st[to] = St::Idle;
                    others.push((to, Ok(Some(got))));
                    (t.timeout(), Some(Ok(None)))
                } else if self.accepts(to, from, false) {
                    // A rendezvous with a waiting receiver. NOWAIT too: the receiver already
                    // waits for us, so the send completes when it runs (within a grace).
                    self.ticket += 1;
                    self.st[to] = St::Idle;
                    others.push((to, Ok(Some(got))));
                    let timeout = match t {
                        T::NoWait => Timeout::NoWait,
                        _ => Timeout::Forever,
                    };
                    (timeout, Some(Ok(None)))
                } else {
                    self.block_sender(from, to, Kind::Send, got, t)
                }
            }
            Op::Sendrec { from, to, t } => {
                let got = msg(from, M_SENDREC, tag);
                if to == from {
                    now(Err(Errno::EDVSENDPOINT))
                } else if self.st[to] == (St::AwaitReply { server: from }) {
                    // `to` receives from us (the receive half of its sendrec): our request is
                    // its reply, and we wait for its answer.
                    note = Some("as the reply");
                    self.st[to] = St::Idle;
                    others.push((to, Ok(Some(got))));
                    match t {
                        T::NoWait => (Timeout::NoWait, Some(Err(Errno::EDVSAGAIN))),
                        T::Short => (SHORT, Some(Err(Errno::EDVSTIMEDOUT))),
                        T::Forever => {
                            self.st[from] = St::AwaitReply { server: to };
                            (Timeout::Forever, None)
                        }
                    }
                } else if self.accepts(to, from, false) {
                    self.ticket += 1;
                    self.st[to] = St::Idle;
                    others.push((to, Ok(Some(got))));
                    self.st[from] = St::AwaitReply { server: to };
                    (Timeout::Forever, None)
                } else {
                    self.block_sender(from, to, Kind::Sendrec, got, t)
                }
            }
            Op::Senda { from, to } => {
                let got = msg(from, M_SENDA, tag);
                let in_flight = self
                    .queue
                    .iter()
                    .filter(|q| q.from == from && q.kind == Kind::Async)
                    .count();
                if !is_sys(from) {
                    now(Err(Errno::EDVSBADCALL))
                } else if to == from {
                    now(Err(Errno::EDVSBADDEST))
                } else if in_flight >= m3ipc::mailbox::ASYNC_ENVELOPES {
                    now(Err(Errno::EDVSAGAIN))
                } else {
                    self.ticket += 1;
                    if self.accepts(to, from, false) {
                        self.st[to] = St::Idle;
                        others.push((to, Ok(Some(got))));
                    } else {
                        self.queue.push(Queued {
                            from,
                            to,
                            ticket: self.ticket,
                            kind: Kind::Async,
                            got,
                        });
                    }
                    now(Ok(None))
                }
            }
            Op::Notify { from, to } => {
                if !is_sys(from) {
                    now(Err(Errno::EDVSBADCALL))
                } else if to == from {
                    now(Err(Errno::EDVSENDPOINT))
                } else if !is_sys(to) {
                    now(Err(Errno::EDVSTRAPDENIED))
                } else {
                    if self.notify[to].contains(&from) {
                        // Coalesces with the pending one.
                    } else if self.accepts(to, from, true) {
                        self.st[to] = St::Idle;
                        others.push((to, Ok(Some(notification(from)))));
                    } else {
                        self.notify[to].insert(from);
                    }
                    now(Ok(None))
                }
            }
            Op::Receive { by, src, t } => {
                if !is_sys(by) {
                    now(Err(Errno::EDVSBADCALL))
                } else if src == Src::From(by) {
                    now(Err(Errno::EDVSENDPOINT))
                } else if src == Src::Any && self.woken[by] {
                    self.woken[by] = false;
                    (t.timeout(), Some(Err(Errno::EDVSWOKENUP)))
                } else if let Some(&n) = self.notify[by]
                    .iter()
                    .find(|&&n| src == Src::Any || src == Src::From(n))
                {
                    self.notify[by].remove(&n);
                    if src != Src::Any && self.closes_cycle(by, n, false) {
                        // Receiving from a process that receives from us: the pending
                        // notification comes first (step 2), never EDVSLOCKED.
                        note = Some("its source receives from it");
                    }
                    (t.timeout(), Some(Ok(Some(notification(n)))))
                } else if let Some(i) = self.oldest(by, src) {
                    let got = self.take(by, i, &mut others);
                    (t.timeout(), Some(Ok(Some(got))))
                } else {
                    self.block_receiver(by, src, false, t)
                }
            }
            Op::Rcvrqst { by, t } => {
                if !is_sys(by) {
                    now(Err(Errno::EDVSBADCALL))
                } else if self.woken[by] {
                    self.woken[by] = false;
                    (t.timeout(), Some(Err(Errno::EDVSWOKENUP)))
                } else if let Some(i) = self.oldest(by, Src::Any) {
                    let got = self.take(by, i, &mut others);
                    (t.timeout(), Some(Ok(Some(got))))
                } else {
                    self.block_receiver(by, Src::Any, true, t)
                }
            }
            Op::Reply { from, to } => {
                if !is_sys(from) {
                    now(Err(Errno::EDVSBADCALL))
                } else if to == from {
                    now(Err(Errno::EDVSENDPOINT))
                } else if self.st[to] == (St::AwaitReply { server: from }) {
                    self.st[to] = St::Idle;
                    others.push((to, Ok(Some(msg(from, M_REPLY, tag)))));
                    now(Ok(None))
                } else {
                    now(Err(Errno::EDVSPROCSTS))
                }
            }
            Op::Wakeup { from, to } => {
                if !is_sys(from) {
                    now(Err(Errno::EDVSBADCALL))
                } else if to == from {
                    now(Err(Errno::EDVSENDPOINT))
                } else {
                    if matches!(self.st[to], St::Receiving { src: Src::Any, .. }) {
                        self.st[to] = St::Idle;
                        others.push((to, Err(Errno::EDVSWOKENUP)));
                    } else {
                        self.woken[to] = true;
                    }
                    now(Ok(None))
                }
            }
            Op::Answer { .. } => unreachable!("resolved before use"),
        };
        Some(Plan {
            issuer,
            timeout,
            result,
            others,
            note,
        })
    }
}

impl T {
    fn timeout(self) -> Timeout {
        match self {
            T::NoWait => Timeout::NoWait,
            T::Short => SHORT,
            T::Forever => Timeout::Forever,
        }
    }
}

