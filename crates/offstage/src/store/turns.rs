//! **Turns** between concurrency keys: how a claim of a keyed task type shares its room
//! between the keys with work, the same in every backend (`Store::claim_keyed`).
//!
//! The keys come least recently served first, each with the room its per-key limit leaves.
//! Rounds share what is left evenly among the keys still active (at least one task each), in
//! that order, until the room is used or every key is exhausted (it had fewer due tasks than
//! asked, or reached its limit). So one key with 100,000 queued tasks takes one share, and a
//! key with one task gets it in the same claim, or the next one when the room was smaller than
//! the number of keys.

/// One claim's plan over the keys with work: which key to ask for how many tasks next.
#[derive(Debug)]
pub(crate) struct Turns {
    /// Each key, the room its limit leaves, and whether it may still have due tasks.
    keys: Vec<(String, usize, bool)>,
    /// What the claim may still take.
    left: usize,
    /// How many keys were asked at least once: they count as served.
    asked: usize,
}

impl Turns {
    /// `keys` (least recently served first) with how many of each hold a place now, for a
    /// limit of `per_key` a key and `room` in all.
    pub(crate) fn new(keys: Vec<(String, i64)>, per_key: usize, room: usize) -> Self {
        let keys = keys
            .into_iter()
            .map(|(key, running)| {
                let free = (per_key as i64 - running).max(0) as usize;
                (key, free, free > 0)
            })
            .collect();
        Self {
            keys,
            left: room,
            asked: 0,
        }
    }

    /// The next round: the index of each active key and how many to ask it for; `None` when
    /// the claim is done.
    pub(crate) fn round(&self) -> Option<Vec<(usize, usize)>> {
        let active = self.keys.iter().filter(|k| k.2).count();
        if self.left == 0 || active == 0 {
            return None;
        }
        let share = (self.left / active).max(1);
        Some(
            self.keys
                .iter()
                .enumerate()
                .filter(|(_, k)| k.2)
                .map(|(i, k)| (i, share.min(k.1)))
                .collect(),
        )
    }

    /// How many the claim may still take.
    pub(crate) fn left(&self) -> usize {
        self.left
    }

    /// Key `index`.
    pub(crate) fn key(&self, index: usize) -> &str {
        &self.keys[index].0
    }

    /// Key `index` was asked for `asked` tasks and gave `got`.
    pub(crate) fn took(&mut self, index: usize, asked: usize, got: usize) {
        self.asked = self.asked.max(index + 1);
        let key = &mut self.keys[index];
        key.1 -= got.min(key.1);
        self.left -= got.min(self.left);
        if got < asked || key.1 == 0 {
            key.2 = false;
        }
    }

    /// The keys this claim asked, in order: each gets its turn marked.
    pub(crate) fn served(&self) -> impl Iterator<Item = &str> {
        self.keys[..self.asked].iter().map(|k| k.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Turns;

    /// Runs a claim of `room` over keys with `due` tasks each and a limit of `per_key`.
    fn run(due: &[(&str, usize)], per_key: usize, room: usize) -> Vec<(String, usize)> {
        let mut due: Vec<(String, usize)> = due.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        let mut turns = Turns::new(
            due.iter().map(|(k, _)| (k.clone(), 0)).collect(),
            per_key,
            room,
        );
        let mut taken: Vec<(String, usize)> = due.iter().map(|(k, _)| (k.clone(), 0)).collect();
        while let Some(round) = turns.round() {
            for (i, ask) in round {
                let ask = ask.min(turns.left());
                if ask == 0 {
                    break;
                }
                let got = ask.min(due[i].1);
                due[i].1 -= got;
                taken[i].1 += got;
                turns.took(i, ask, got);
            }
        }
        taken
    }

    #[test]
    fn a_huge_backlog_takes_one_share_and_a_small_key_gets_its_task() {
        let taken = run(&[("a", 100_000), ("b", 1)], 1_000, 256);
        assert_eq!(taken, vec![("a".into(), 255), ("b".into(), 1)]);
    }

    #[test]
    fn the_room_is_shared_evenly_and_limits_hold() {
        let taken = run(&[("a", 50), ("b", 50), ("c", 2)], 10, 30);
        assert_eq!(
            taken,
            vec![("a".into(), 10), ("b".into(), 10), ("c".into(), 2)]
        );
    }

    #[test]
    fn with_less_room_than_keys_the_first_keys_get_one_each() {
        let taken = run(&[("a", 5), ("b", 5), ("c", 5)], 10, 2);
        assert_eq!(
            taken,
            vec![("a".into(), 1), ("b".into(), 1), ("c".into(), 0)]
        );
    }
}
