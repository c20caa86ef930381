use super::*;

fn ids(players: usize) -> Vec<u128> {
    (0..players as u128).map(|p| 100 + p).collect()
}

/// Players exchanging seating messages instantly, each at its own frame.
struct Table {
    seats: Vec<Seats>,
    frames: Vec<i32>,
    /// What each player did last, besides sending.
    done: Vec<Vec<SeatAction>>,
}

impl Table {
    fn new(players: usize) -> Table {
        let seats = (0..players)
            .map(|me| {
                let mut seats = Seats::new(me, ids(players));
                seats.started();
                seats
            })
            .collect();
        Table {
            seats,
            frames: vec![100; players],
            done: vec![Vec::new(); players],
        }
    }

    fn run(&mut self, from: usize, actions: Vec<SeatAction>) {
        for action in actions {
            match action {
                SeatAction::Send(to, message) => {
                    let frame = self.frames[to];
                    let more = self.seats[to]
                        .receive(from, message, frame)
                        .expect("an honest message is taken");
                    self.run(to, more);
                }
                other => self.done[from].push(other),
            }
        }
    }

    /// `a` and `b` lost each other: each drops the other.
    fn cut(&mut self, a: &[usize], b: &[usize]) {
        for &x in a {
            for &y in b {
                self.seats[x].disconnected(y);
                self.seats[y].disconnected(x);
                let _ = self.seats[x].dropped(y);
                let _ = self.seats[y].dropped(x);
            }
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        let first = self.seats[a].connected(b);
        let second = self.seats[b].connected(a);
        self.run(a, first);
        self.run(b, second);
    }

    /// One frame for everyone: confirmed two frames behind, the planned
    /// frame saved once reached.
    fn step(&mut self) {
        for p in 0..self.seats.len() {
            self.frames[p] += 1;
            let frame = self.frames[p];
            let saved = self.seats[p].saving().is_some_and(|at| frame > at);
            let actions = self.seats[p].tick(frame, frame - 2, saved, PLAN_LEAD);
            self.run(p, actions);
        }
    }
}

#[test]
fn the_larger_side_takes_the_lost_player_back_and_everyone_restarts_alike() {
    let mut table = Table::new(4);
    table.cut(&[0, 1, 2], &[3]);
    assert_eq!(table.seats[0].present(), 0b0111);
    assert_eq!(table.seats[3].present(), 0b1000);
    for other in 0..3 {
        table.connect(3, other);
    }
    for _ in 0..(PLAN_LEAD + 10) {
        table.step();
    }
    let restarts: Vec<(u32, u64, i32)> = (0..3)
        .map(|p| match table.done[p].as_slice() {
            [
                SeatAction::Restart {
                    epoch,
                    present,
                    base,
                    ..
                },
            ] => (*epoch, *present, *base),
            other => panic!("player {p} did {other:?}"),
        })
        .collect();
    assert!(restarts.windows(2).all(|w| w[0] == w[1]), "{restarts:?}");
    let (epoch, present, base) = restarts[0];
    assert_eq!((epoch, present), (1, 0b1111));
    match &table.done[0][0] {
        SeatAction::Restart { handover, .. } => assert_eq!(*handover, 0b1000),
        _ => unreachable!(),
    }
    // The returning player stopped, then needs the leader's state.
    assert_eq!(table.done[3], vec![SeatAction::Stop]);
    assert!(table.seats[3].returning());
    let actions = table.seats[3]
        .receive(
            0,
            Seating::Handover {
                epoch,
                state: vec![7],
            },
            0,
        )
        .unwrap();
    assert_eq!(
        actions,
        vec![SeatAction::Load {
            epoch,
            present,
            base,
            state: vec![7]
        }]
    );
    for p in 0..4 {
        assert_eq!(table.seats[p].epoch(), Some(1));
        assert_eq!(table.seats[p].present(), 0b1111);
        assert_eq!(table.seats[p].base(), base);
    }
}

#[test]
fn a_tie_goes_to_the_side_with_the_lowest_handle() {
    assert!(beats(0b01, 0b10));
    assert!(!beats(0b10, 0b01));
    assert!(beats(0b110, 0b001), "more players win");
    assert!(!beats(0b11, 0b11), "a side does not beat itself");
    let mut table = Table::new(2);
    table.cut(&[0], &[1]);
    table.connect(1, 0);
    for _ in 0..(PLAN_LEAD + 10) {
        table.step();
    }
    assert!(matches!(
        table.done[0].as_slice(),
        [SeatAction::Restart { handover: 0b10, .. }]
    ));
    assert!(table.seats[1].returning());
}

#[test]
fn a_player_dropped_after_connecting_is_weighed_again() {
    let mut table = Table::new(3);
    // Connected again before the drops completed: nothing to do yet.
    table.connect(2, 0);
    table.connect(2, 1);
    table.step();
    assert!(table.done.iter().all(Vec::is_empty));
    // The drops complete (each side tells the other it changed).
    for p in [0, 1] {
        let actions = table.seats[p].dropped(2);
        table.run(p, actions);
        let actions = table.seats[2].dropped(p);
        table.run(2, actions);
    }
    for _ in 0..(PLAN_LEAD + 10) {
        table.step();
    }
    assert!(matches!(
        table.done[0].as_slice(),
        [SeatAction::Restart { present: 0b111, .. }]
    ));
    assert!(matches!(
        table.done[1].as_slice(),
        [SeatAction::Restart { present: 0b111, .. }]
    ));
    assert!(table.seats[2].returning());
}

#[test]
fn plans_and_state_from_the_wrong_player_are_refused() {
    let mut table = Table::new(3);
    table.cut(&[0, 1], &[2]);
    let plan = |epoch, present| Seating::Plan {
        epoch,
        at: 150,
        base: 150,
        present,
        players: ids(3),
        side: 0b011,
    };
    // Player 1 does not lead its side.
    assert!(table.seats[0].receive(1, plan(1, 0b111), 100).is_err());
    // Nor may the leader skip an epoch, or name seats beyond the match.
    assert!(table.seats[1].receive(0, plan(2, 0b111), 100).is_err());
    assert!(matches!(
        table.seats[1].receive(0, plan(1, 0b1111), 100),
        Err(SeatingError::Handles(_))
    ));
    // A base that does not follow from ours.
    let bad_base = Seating::Plan {
        epoch: 1,
        at: 150,
        base: 7,
        present: 0b111,
        players: ids(3),
        side: 0b011,
    };
    // Other players than the match's.
    let others = Seating::Plan {
        epoch: 1,
        at: 150,
        base: 150,
        present: 0b111,
        players: ids(4)[1..].to_vec(),
        side: 0b011,
    };
    assert_eq!(
        table.seats[1].receive(0, others, 100),
        Err(SeatingError::Players)
    );
    assert!(table.seats[1].receive(0, bad_base, 100).is_err());
    // State nobody planned.
    let state = Seating::Handover {
        epoch: 1,
        state: Vec::new(),
    };
    assert!(table.seats[2].receive(0, state, 0).is_err());
    // A late plan is no offence, but not honoured.
    assert!(
        table.seats[1]
            .receive(0, plan(1, 0b111), 200)
            .unwrap()
            .is_empty()
    );
    assert_eq!(table.seats[1].saving(), None);
}

#[test]
fn a_restarted_player_is_seated_by_the_plan_alone() {
    let mut table = Table::new(3);
    // Player 2's process restarted: the others dropped it; it knows nothing.
    for p in [0, 1] {
        table.seats[p].disconnected(2);
        let _ = table.seats[p].dropped(2);
    }
    let view = table.seats[0].connected(2);
    assert!(matches!(
        view.as_slice(),
        [SeatAction::Send(
            2,
            Seating::View {
                epoch: Some(0),
                present: 0b011
            }
        )]
    ));
    // Its own view says it plays nothing.
    let fresh = Seating::View {
        epoch: None,
        present: 0,
    };
    table.seats[0].receive(2, fresh.clone(), 100).unwrap();
    let _ = table.seats[1].connected(2);
    table.seats[1].receive(2, fresh, 100).unwrap();
    let frame = table.frames[0] + 1;
    let plan = table.seats[0]
        .tick(frame, frame - 2, false, PLAN_LEAD)
        .into_iter()
        .find_map(|a| match a {
            SeatAction::Send(2, plan @ Seating::Plan { .. }) => Some(plan),
            _ => None,
        })
        .expect("the leader plans");
    let ids = ids(3);
    // Only a player of the plan seats it, and only if the plan names it.
    assert!(Seats::from_plan(ids[2], 999, plan.clone()).is_err());
    assert!(Seats::from_plan(ids[2], ids[2], plan.clone()).is_err());
    assert!(Seats::from_plan(999, ids[0], plan.clone()).is_err());
    let mut returning = Seats::from_plan(ids[2], ids[0], plan).unwrap();
    assert_eq!(returning.me(), 2);
    assert!(returning.returning());
    let state = Seating::Handover {
        epoch: 1,
        state: vec![1, 2],
    };
    assert!(returning.clone().receive(1, state.clone(), 0).is_err());
    let actions = returning.receive(0, state, 0).unwrap();
    assert!(matches!(
        actions.as_slice(),
        [SeatAction::Load {
            epoch: 1,
            present: 0b111,
            ..
        }]
    ));
}

#[test]
fn a_restarted_player_with_the_lowest_handle_is_seated_too() {
    let mut table = Table::new(3);
    for p in [1, 2] {
        table.seats[p].disconnected(0);
        let _ = table.seats[p].dropped(0);
    }
    let fresh = Seating::View {
        epoch: None,
        present: 0,
    };
    let _ = table.seats[1].connected(0);
    table.seats[1].receive(0, fresh, 100).unwrap();
    let frame = table.frames[1] + 1;
    let plan = table.seats[1]
        .tick(frame, frame - 2, false, PLAN_LEAD)
        .into_iter()
        .find_map(|a| match a {
            SeatAction::Send(0, plan @ Seating::Plan { .. }) => Some(plan),
            _ => None,
        })
        .expect("player 1 leads the side that stayed, and plans");
    let ids = ids(3);
    let mut returning = Seats::from_plan(ids[0], ids[1], plan).unwrap();
    assert_eq!(returning.me(), 0);
    let state = Seating::Handover {
        epoch: 1,
        state: Vec::new(),
    };
    assert!(returning.receive(1, state, 0).is_ok());
}
