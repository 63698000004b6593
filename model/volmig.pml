/*
 * volmig.pml: the shim/copier region protocol of volmig, checked with spin
 * for invariant I1 ("no lost write", DESIGN.md "Invariants") with a crash of
 * either side at any step.  model/README.md says what is modelled and what
 * is abstracted away; model/check.sh runs the checks.
 *
 * Processes:
 *   writer0, writer1  two application processes under the shim; writer w
 *                     makes NWw writes, each to a region it picks
 *                     nondeterministically (preload/shim.c
 *                     shim_track_begin/shim_track_end, lib/ctl.c);
 *   worker            one copier worker thread: bulk and dirty copies
 *                     (copier/engine.c worker, copy_region, complete_region);
 *   copier            the copier's main thread: start-up (join or build the
 *                     control block, copier/ctlopen.c) and checkpoints with
 *                     ingest (copier/engine.c checkpoint, copier/ingest.c);
 *   crasher           at any moment, at most MAXCC, MAXKILL and MAXPL times:
 *                     kills the copier process (both threads), kills a
 *                     writer process, cuts the power;
 *   monitor           asserts I1 in every reachable state, for the target as
 *                     a process crash leaves it (page cache, tin) and as a
 *                     power loss leaves it (on disk, din).
 * When every writer is gone and the copier has reached synced, it also
 * asserts that the target equals the source, in the page cache and on disk.
 *
 * Contents: every application write gives the source region a new version,
 * and copies and flushes only ever move a version forward (one worker, so
 * target versions never exceed the source's and never go back).  What I1
 * needs is whether a copy equals the source, so the model keeps exactly
 * that: one bit per region for the target's page cache, one for its disk.
 *
 * Broken variants (each must make spin find an assertion violation):
 *   -DBROKEN_WRITE_BEFORE_INTENT  the shim issues the data write before its
 *                                 intent record is durable (breaks I2)
 *   -DBROKEN_NO_DRAIN             ctl_copy_begin clears DIRTY without waiting
 *                                 for writes in flight (breaks I4)
 *   -DBROKEN_CLEAN_BEFORE_FLUSH   the checkpoint commits before it flushes
 *                                 the target (breaks I3)
 *   -DBROKEN_INGEST_KEEPS_DEL     ingest does not cancel a pending delete of
 *                                 a region from the durable dirty set
 *   -DBROKEN_REPAIR_SETS_DIRTY    ctl_repair_dead sets DIRTY on the region of
 *                                 a dead writer: a bit no durable state backs
 *   -DBROKEN_STALE_DIRTY          after a power loss the control block is
 *                                 trusted as the file holds it (no
 *                                 ctl_reset): stale DIRTY bits
 * Sanity variant (must fail too, showing the end is reachable):
 *   -DREACH_SYNCED                asserts that the copier never reaches synced
 */

#define NR 2                    /* regions */
#ifndef NW0
#define NW0 1                   /* writes made by writer 0 */
#endif
#ifndef NW1
#define NW1 1                   /* writes made by writer 1 */
#endif
#ifndef MAXCC
#define MAXCC 0                 /* copier process crashes */
#endif
#ifndef MAXKILL
#define MAXKILL 0               /* writer process kills */
#endif
#ifndef MAXPL
#define MAXPL 0                 /* power losses */
#endif

#define BIT(R) (1 << (R))
#define ALL ((1 << NR) - 1)

/* ---- volumes ---------------------------------------------------------- */
/* The source is written through: a write is durable once issued.  At the
 * start the target differs from the source everywhere. */
bit tin[NR];                    /* target page cache == source: what a process crash leaves */
bit din[NR];                    /* target on disk == source: what a power loss leaves */

/* ---- the control block: the fields of each region word ---------------- */
/* cursor 0: every region is at or past it, so DIRTY from the start */
bit dirty[NR] = 1;              /* CTL_DIRTY */
bit cip[NR];                    /* CTL_CIP */
bit raced[NR];                  /* CTL_RACED */
byte infl[NR];                  /* CTL_INFLIGHT, the count of writes in flight */

/* ---- the dirty log ---------------------------------------------------- */
/* What matters of the segments is which regions their durable records not
 * yet ingested name, and which of those the checkpoint under way has
 * collected (ingest_collect): it ingests exactly those, however many
 * records and segments name them. */
byte lrec;                      /* named by durable records not collected, bit R */
byte brec;                      /* named by records in the batch collected */

/* ---- durable state (Berkeley DB) -------------------------------------- */
byte cur;                       /* bulk cursor: regions below it were copied */
byte ddirty;                    /* durable dirty set, bit R */

/* ---- writers (shim) --------------------------------------------------- */
byte wr[2];                     /* region of writer w's current write */
bit wc[2];                      /* the write is counted in infl[wr[w]] (journaled) */
bit wph[2];                     /* its data write is issued, not completed */
bit wdone[2];                   /* exited, or killed */
bit killw[2];                   /* the crasher kills writer w */
bit plw[2];                     /* a power loss interrupted writer w */

/* ---- copier process: volatile state, lost in a crash ------------------ */
byte cgen;                      /* bumped by every copier crash: its threads die */
bit cup;                        /* the copier (re)started for generation cgen */
byte bulk_next;                 /* next bulk region to hand out */
byte cdone;                     /* bulk regions finished, bit R (the done map) */
byte pend_add, pend_del;        /* pending changes to the durable dirty set */
byte mdd;                       /* the durable dirty set as the copier knows it */
bit pcopied;                    /* data copied since the last snapshot */
bit wbusy;                      /* the worker holds an item (e->active) */
bit cfinished;                  /* the copier reached synced and checked it */

/* ---- the crasher ------------------------------------------------------ */
byte ncc, nkill, npl;

/* A durable record not yet ingested names R. */
#define LOGGED(R) (((lrec | brec) & BIT(R)) != 0)
/* An application write to R is issued and not completed. */
#define ISSUED(R) ((wph[0] && wr[0] == (R)) || (wph[1] && wr[1] == (R)))
/* I1 for region R with T the target that survives the crash: in sync and
 * no write in flight; or dirty in durable state (the dirty set, or a
 * durable record not yet ingested); or at or past the durable cursor. */
#define COVERED(T, R) ((T[R] && !ISSUED(R)) || (ddirty & BIT(R)) || LOGGED(R) || (R) >= cur)
#define I1(T) (COVERED(T, 0) && COVERED(T, 1))

/* The first bulk region not finished: the cursor a checkpoint records. */
#define NEXT_CLEAR(D) (((D) & 1) == 0 -> 0 : (((D) & 2) == 0 -> 1 : 2))
/* The done map of a copier that starts at cursor C. */
#define DONE_BELOW(C) ((C) == 0 -> 0 : ((C) == 1 -> 1 : ALL))

/* ======================================================================== */
/* The control block as commands open it                                   */
/* ======================================================================== */

/* mark_durable (copier/ctlopen.c): DIRTY for every region at or past the
 * cursor or in the durable dirty set.  Regions named by records not yet
 * ingested are marked by the first checkpoint's ingest, as in the engine. */
inline mark_durable() {
	if :: (0 >= cur || (ddirty & BIT(0))) -> dirty[0] = 1 :: else -> skip fi;
	if :: (1 >= cur || (ddirty & BIT(1))) -> dirty[1] = 1 :: else -> skip fi
}

/* ctl_repair_dead: a writer that died mid-write gives back the count its
 * journal holds.  It must not set DIRTY: a bit set there is backed by
 * nothing durable, yet the next writer to the region trusts it and skips
 * its intent record (-DBROKEN_REPAIR_SETS_DIRTY).  Nor is one needed: a
 * dead write that was issued found DIRTY set or set it once its intent was
 * durable, and DIRTY cannot be cleared while the count is held. */
#ifdef BROKEN_REPAIR_SETS_DIRTY
#define REPAIR_MARK(R) dirty[R] = 1
#else
#define REPAIR_MARK(R) skip
#endif
inline repair_dead() {
	if
	:: wdone[0] && wc[0] -> infl[wr[0]]--; REPAIR_MARK(wr[0]); wc[0] = 0; wr[0] = 0
	:: else -> skip
	fi;
	if
	:: wdone[1] && wc[1] -> infl[wr[1]]--; REPAIR_MARK(wr[1]); wc[1] = 0; wr[1] = 0
	:: else -> skip
	fi
}

/* ctl_reset: every region word zero (what a process that attaches alone
 * does: nothing in the block is backed by a live process). */
inline ctl_reset() {
	dirty[0] = 0; dirty[1] = 0; cip[0] = 0; cip[1] = 0;
	raced[0] = 0; raced[1] = 0; infl[0] = 0; infl[1] = 0
}

/* ======================================================================== */
/* The shim                                                                 */
/* ======================================================================== */

/* The data write is issued: the source holds a new version from now on. */
inline issue(w) {
	atomic { tin[wr[w]] = 0; din[wr[w]] = 0; wph[w] = 1 }
}

/* One application write (shim_track_begin, the write, shim_track_end). */
inline write_once(w, NW) {
	/* ctl_wbegin: one CAS on the region word counts the write in flight.
	 * A writer that finds CIP set waits (it is simply not scheduled until
	 * CIP clears) or, after its bounded wait (I7), goes ahead and sets
	 * RACED in the same CAS. */
	atomic {
		n < NW -> n++;
		if :: wr[w] = 0 :: wr[w] = 1 fi;
		if :: cip[wr[w]] -> raced[wr[w]] = 1 :: else -> skip fi;
		infl[wr[w]]++;
		wc[w] = 1;
		wasdirty = dirty[wr[w]]
	};
#ifdef BROKEN_WRITE_BEFORE_INTENT
	issue(w);
#endif
	/* Only a clean -> dirty transition is logged: dlog_append writes the
	 * record and returns once fdatasync made it durable (I2), then
	 * ctl_mark_dirty_range.  One step here: a crash before the fdatasync
	 * ends leaves a record nothing relies on (no data write was issued),
	 * and until DIRTY is set other writers can only log too, and no copy
	 * can clean the region (the count is held). */
	if
	:: !wasdirty -> atomic { lrec = lrec | BIT(wr[w]); dirty[wr[w]] = 1 }
	:: else -> skip
	fi;
#ifndef BROKEN_WRITE_BEFORE_INTENT
	issue(w);
#endif
	/* the write returns; ctl_wend */
	atomic { wph[w] = 0; infl[wr[w]]--; wc[w] = 0; wr[w] = 0; wasdirty = 0 }
}

/* A writer process.  A kill stops it for good, its count left in flight
 * for the copier to repair (ctl_repair_dead).  A power loss abandons the
 * current write; the application is restarted and goes on with the writes
 * it has left. */
inline writer_body(w, NW) {
	do
	:: {
		do
		:: write_once(w, NW)
		:: atomic { n >= NW -> wdone[w] = 1 }; goto fin
		od
	   } unless {
		if
		:: atomic {
			killw[w] ->
			wph[w] = 0; killw[w] = 0; wdone[w] = 1; wasdirty = 0;
			if :: !wc[w] -> wr[w] = 0 :: else -> skip fi
		   };
			goto fin
		:: atomic { plw[w] -> plw[w] = 0; wasdirty = 0 }
		fi
	   }
	od;
fin:
	skip
}

active proctype writer0() {
	byte n = 0;
	bit wasdirty = 0;
	writer_body(0, NW0)
}

active proctype writer1() {
	byte n = 0;
	bit wasdirty = 0;
	writer_body(1, NW1)
}

/* ======================================================================== */
/* The copier: worker thread                                                */
/* ======================================================================== */

/* copy_region and complete_region for region r, once next_work handed it
 * out and ctl_copy_begin set CIP.  (Handing out only touches the copier's
 * memory, so it is one step with the fetch_or that sets CIP.) */
inline copy_r() {
	/* ctl_copy_begin, after its fetch_or(CIP): one CAS that clears DIRTY
	 * when no write is in flight; or, after COPY_WAIT_US, withdraw CIP and
	 * RACED and leave the region dirty (-EBUSY) */
	if
	:: atomic {
#ifdef BROKEN_NO_DRAIN
		true -> dirty[r] = 0;
#else
		infl[r] == 0 -> dirty[r] = 0;
#endif
		/* pread the source, pwrite the target (one step with the CAS: a
		 * write that lands in between is a RACED one, whose copy does
		 * not count) */
		tin[r] = 1
	   };
		/* ctl_copy_end: fetch_and(~(CIP|RACED)) returns the old word, and
		 * when it was not clean, fetch_or(DIRTY) (one step: between the
		 * two a writer could only find DIRTY clear and log an intent it
		 * need not log) */
		atomic {
			clean = !(raced[r] || dirty[r] || infl[r] > 0);
			cip[r] = 0; raced[r] = 0; copied = 1;
			if :: !clean -> dirty[r] = 1 :: else -> skip fi
		}
	:: atomic { infl[r] > 0 -> cip[r] = 0; raced[r] = 0; clean = 0 }
	fi;
	/* complete_region, under the engine mutex */
	atomic {
		if :: isbulk -> cdone = cdone | BIT(r) :: else -> skip fi;
		if :: copied -> pcopied = 1 :: else -> skip fi;
		/* a write may have dirtied the region again after the copy */
		if :: clean && dirty[r] -> clean = 0 :: else -> skip fi;
		if
		:: clean ->
			pend_add = pend_add & ~BIT(r);
			if :: (mdd & BIT(r)) -> pend_del = pend_del | BIT(r) :: else -> skip fi
		:: else ->
			pend_del = pend_del & ~BIT(r);
			if :: !(mdd & BIT(r)) -> pend_add = pend_add | BIT(r) :: else -> skip fi
		fi;
		wbusy = 0; r = 0; isbulk = 0; clean = 0; copied = 0
	}
}

active proctype worker() {
	byte r = 0;
	bit clean = 0, isbulk = 0, copied = 0;
	byte wgen = 255;

	do
	:: cfinished -> break
	:: atomic { cup && wgen != cgen -> wgen = cgen };
		{
			/* next_work: bulk first, then regions below the bulk
			 * position whose DIRTY bit is set */
			do
			:: atomic {
				bulk_next < NR ->
				r = bulk_next; bulk_next++; isbulk = 1; wbusy = 1; cip[r] = 1
			   };
				copy_r()
			:: atomic { bulk_next == NR && dirty[0] -> r = 0; wbusy = 1; cip[0] = 1 };
				copy_r()
			:: atomic { bulk_next == NR && dirty[1] -> r = 1; wbusy = 1; cip[1] = 1 };
				copy_r()
			:: cfinished -> break
			od
		} unless { cgen != wgen };
		atomic { r = 0; clean = 0; isbulk = 0; copied = 0 }
	od
}

/* ======================================================================== */
/* The copier: main thread                                                  */
/* ======================================================================== */

/* engine_prepare and session_ctl_open: load durable state; join the block
 * when processes are attached (clear what a dead copier left, DIRTY from
 * durable state, repair dead writers), else build it from durable state. */
inline copier_start() {
	if
	:: !wdone[0] || !wdone[1] ->
		cip[0] = 0; cip[1] = 0; raced[0] = 0; raced[1] = 0;
		mark_durable();
		repair_dead()
	:: else ->
		ctl_reset();
		wc[0] = 0; wc[1] = 0; wr[0] = 0; wr[1] = 0;
		mark_durable()
	fi;
	bulk_next = cur; cdone = DONE_BELOW(cur); mdd = ddirty;
	pend_add = 0; pend_del = 0; pcopied = 0; wbusy = 0
}

/* A checkpoint has something to do: a dead writer to repair, records to
 * ingest, or progress to record.  (One that starts with nothing to do
 * changes nothing that one started a moment later would not.) */
#define CKPT_DUE ((wdone[0] && wc[0]) || (wdone[1] && wc[1]) || lrec != 0 || \
		  pend_add != 0 || pend_del != 0 || pcopied || NEXT_CLEAR(cdone) != cur)

/* checkpoint(): repair, ingest, snapshot, flush the target, one
 * transaction.  G guards the first step. */
inline checkpoint(G) {
	atomic {
		G;
		/* ctl_repair_dead: writers that died mid-write hold in-flight
		 * counts: take them back */
		repair_dead();
		/* ingest_collect: the durable records past each ingest offset.
		 * (One step with what follows under the engine mutex: a record
		 * appended between the two stays in the log for the next
		 * checkpoint, which a collect one step later would also see.) */
		brec = lrec; lrec = 0;
		/* ingest_apply (ingest_mark for each region named), then the
		 * snapshot of cursor and pending changes */
		if
		:: (brec & BIT(0)) ->
			dirty[0] = 1;
#ifndef BROKEN_INGEST_KEEPS_DEL
			pend_del = pend_del & ~BIT(0);
#endif
			if :: (cdone & BIT(0)) && !(mdd & BIT(0)) -> pend_add = pend_add | BIT(0) :: else -> skip fi
		:: else -> skip
		fi;
		if
		:: (brec & BIT(1)) ->
			dirty[1] = 1;
#ifndef BROKEN_INGEST_KEEPS_DEL
			pend_del = pend_del & ~BIT(1);
#endif
			if :: (cdone & BIT(1)) && !(mdd & BIT(1)) -> pend_add = pend_add | BIT(1) :: else -> skip fi
		:: else -> skip
		fi;
		ingested = (brec != 0);
		ck_cur = NEXT_CLEAR(cdone);
		ck_add = pend_add; ck_del = pend_del;
		mdd = (mdd | ck_add) & ~ck_del;
		pend_add = 0; pend_del = 0;
		changed = (ingested || ck_cur != cur || ck_add != 0 || ck_del != 0 || pcopied);
		pcopied = 0
	};
#ifndef BROKEN_CLEAN_BEFORE_FLUSH
	/* I3: fdatasync the target when anything changed.  (One step: a
	 * flush cut half-way leaves some regions on disk earlier than
	 * others, and a region on disk that is newer can only be closer to
	 * the source.) */
	if
	:: changed -> atomic { din[0] = tin[0]; din[1] = tin[1] }
	:: else -> skip
	fi;
#endif
	/* the checkpoint transaction: ingest offsets, cursor, dirty set */
	atomic {
		brec = 0;
		cur = ck_cur;
		ddirty = (ddirty & ~ck_del) | ck_add;
		ck_cur = 0; ck_add = 0; ck_del = 0;
#ifndef BROKEN_CLEAN_BEFORE_FLUSH
		changed = 0
#endif
	}
#ifdef BROKEN_CLEAN_BEFORE_FLUSH
	;
	if
	:: changed -> atomic { din[0] = tin[0]; din[1] = tin[1]; changed = 0 }
	:: else -> skip
	fi
#endif
}

/* finished_locked: no item held, bulk pass done, no region DIRTY. */
#define FINISHED (!wbusy && bulk_next == NR && cdone == ALL && !dirty[0] && !dirty[1])

active proctype copier() {
	byte ck_cur = 0, ck_add = 0, ck_del = 0;
	bit changed = 0, ingested = 0;
	byte mgen = 0;

restart:
	atomic { copier_start(); mgen = cgen; cup = 1 };
	{
		do
		/* periodic checkpoint */
		:: checkpoint(CKPT_DUE)
		/* finished: a last checkpoint; synced when it ingested nothing,
		 * nothing became dirty meanwhile and the durable dirty set is
		 * empty (synced_txn).  The model waits for every writer to be
		 * gone first, so that the end state can be checked. */
		:: atomic { wdone[0] && wdone[1] && FINISHED };
			checkpoint(true);
			if
			:: atomic {
				!ingested && FINISHED && ddirty == 0 ->
#ifdef REACH_SYNCED
				assert(false);
#endif
				assert(tin[0] && tin[1]);
				assert(din[0] && din[1]);
				assert(cur == NR);
				cfinished = 1
			   };
				goto fin
			:: else -> ingested = 0
			fi
		od
	} unless { cgen != mgen };
	atomic { ck_cur = 0; ck_add = 0; ck_del = 0; changed = 0; ingested = 0 };
	goto restart;
fin:
	skip
}

/* ======================================================================== */
/* Crashes                                                                  */
/* ======================================================================== */
active proctype crasher() {
end:
	do
	/* the copier process dies (both threads): its memory is lost, with
	 * the batch of records it had collected; the page cache, the control
	 * block and every file survive */
	:: atomic {
		!cfinished && ncc < MAXCC && cup ->
		ncc++; cgen++; cup = 0;
		lrec = lrec | brec; brec = 0
	   }
	/* a writer process dies (when both make as many writes they are
	 * the same but for their number, and killing writer 1 is killing
	 * writer 0 with the two renamed) */
	:: atomic { !cfinished && nkill < MAXKILL && !wdone[0] && !killw[0] -> nkill++; killw[0] = 1 }
#if NW0 != NW1
	:: atomic { !cfinished && nkill < MAXKILL && !wdone[1] && !killw[1] -> nkill++; killw[1] = 1 }
#endif
	/* power loss: every process dies; the target page cache is lost (a
	 * record is in lrec only once durable); writes in flight end (a source
	 * write is taken as durable once issued); the first process to attach
	 * again finds itself alone and resets the control block */
	:: atomic {
		!cfinished && npl < MAXPL ->
		npl++;
		tin[0] = din[0]; tin[1] = din[1];
		lrec = lrec | brec; brec = 0;
		wph[0] = 0; wph[1] = 0; wc[0] = 0; wc[1] = 0; wr[0] = 0; wr[1] = 0;
		killw[0] = 0; killw[1] = 0;
#ifdef BROKEN_STALE_DIRTY
		/* the block is trusted as the file holds it after the reboot:
		 * each DIRTY bit as last written back, any value it ever had */
		cip[0] = 0; cip[1] = 0; raced[0] = 0; raced[1] = 0; infl[0] = 0; infl[1] = 0;
		if :: dirty[0] = 0 :: dirty[0] = 1 fi;
		if :: dirty[1] = 0 :: dirty[1] = 1 fi;
#else
		ctl_reset();
#endif
		/* the copier and the applications are restarted */
		plw[0] = !wdone[0]; plw[1] = !wdone[1];
		cgen++; cup = 0
	   }
	od
}

/* I1 in every state, for both crash views. */
active proctype monitor() {
end:
	atomic {
		!(I1(tin) && I1(din)) ->
		assert(I1(tin));        /* what survives a process crash */
		assert(I1(din))         /* what survives a power loss */
	}
}
