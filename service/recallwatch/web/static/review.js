// The review page: one sampled negative (or, in a held-out holes queue, one displacing document)
// at a time, keys r / n / u / Backspace, a live estimate. The words of what it writes follow the
// state's `kind` (boot.words, from web/review_words.py); the fixed words are rendered server-side.
// Every text from the server is inserted with textContent (documents may contain HTML).
"use strict";
(function () {
  const boot = JSON.parse(document.getElementById("review-boot").textContent);
  const base = window.location.pathname.replace(/\/$/, "");
  const $ = (id) => document.getElementById(id);
  const reviewerInput = $("reviewer");
  const tokenInput = $("token");
  let state = null;
  let busy = false;
  // Each request takes a number; an answer is shown only if no later request was made, so an
  // answer that arrives late (the state before the reviewer was named) never overwrites a newer.
  let latest = 0;
  const answers = { handled: 0 }; // answers received (shown or dropped): tests wait on it

  // The reviewer's name is remembered by the browser; the token too (this browser only). A
  // "#token=..." fragment (never sent to the server) from the start-up message fills it in.
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (fragment.get("token")) {
    localStorage.setItem("recallwatch.review.token", fragment.get("token"));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  reviewerInput.value = localStorage.getItem("recallwatch.review.reviewer") || "";
  tokenInput.value = localStorage.getItem("recallwatch.review.token") || "";
  reviewerInput.addEventListener("change", () => {
    localStorage.setItem("recallwatch.review.reviewer", reviewerInput.value.trim());
    load();
  });
  // Enter in a field commits it and hands the keys back to labelling.
  for (const input of [reviewerInput, tokenInput]) {
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") input.blur();
    });
  }
  tokenInput.addEventListener("change", () => {
    localStorage.setItem("recallwatch.review.token", tokenInput.value.trim());
  });

  function say(text, error) {
    const m = $("message");
    m.textContent = text;
    m.className = error ? "error" : "";
  }

  function fill(el, segments) {
    el.replaceChildren();
    for (const [piece, shared] of segments) {
      if (shared) {
        const mark = document.createElement("mark");
        mark.textContent = piece;
        el.appendChild(mark);
      } else {
        el.appendChild(document.createTextNode(piece));
      }
    }
  }

  function pct(v) {
    return v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%";
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function render(s) {
    state = s;
    const item = s.item;
    const words = boot.words[s.kind];
    if (!words) {
      say(`unknown kind of review set: ${s.kind}`, true);
      return;
    }
    $("progress").textContent = `${s.progress.done} of ${s.progress.total} ${words.progress}`;
    $("item").hidden = !item;
    $("done").hidden = !!item || !s.reviewer;
    if (item) {
      $("position").textContent = String(item.position + 1);
      $("rank").textContent = String(item.rank);
      if ($("score")) $("score").textContent = item.score === null ? "-" : item.score.toFixed(4);
      $("bucket").textContent = item.bucket;
      $("pair").textContent = `${item.query_id} / ${item.doc_id}`;
      $("query").textContent = item.query;
      const pos = $("positives");
      pos.replaceChildren();
      for (const p of item.positives) {
        const para = document.createElement("p");
        para.className = "text";
        fill(para, p.segments);
        pos.appendChild(para);
      }
      fill($("negative"), item.negative);
      $("shared").textContent = item.shared_terms.join(", ") || "none";
    }
    const est = s.estimate;
    const h = est.headline;
    $("headline").textContent = h
      ? `${pct(h.estimate)} [${pct(h.lower)}, ${pct(h.upper)}] from ${est.judged} ${words.judged}`
      : "no judged label yet";
    $("sprt").textContent = est.status;
    $("sprt").className = "badge" + (est.status.startsWith("decided: too high") ? " bad" : "");
    const body = $("buckets").querySelector("tbody");
    body.replaceChildren();
    for (const b of est.rates.buckets) {
      if (!b.population) continue;
      const tr = document.createElement("tr");
      cell(tr, b.bucket);
      cell(tr, String(b.judged), "num");
      cell(tr, String(b.false_negatives), "num");
      cell(tr, b.rate ? pct(b.rate.estimate) : "-", "num");
      cell(tr, b.rate ? `[${pct(b.rate.lower)}, ${pct(b.rate.upper)}]` : "-");
      body.appendChild(tr);
    }
    const ag = s.agreement;
    $("kappa").textContent = ag.pairs
      ? `Cohen's kappa ${ag.kappa === null ? "n/a" : ag.kappa.toFixed(3)} over ${ag.pairs} pair(s) with two labels (${ag.agreeing} agree)`
      : "No pair has two labels yet.";
    const dis = $("disagreements").querySelector("tbody");
    dis.replaceChildren();
    for (const d of ag.disagreements) {
      const tr = document.createElement("tr");
      cell(tr, d.query_id);
      cell(tr, d.doc_id);
      cell(tr, Object.entries(d.labels).map(([r, l]) => `${r}: ${l}`).join("; "));
      dis.appendChild(tr);
    }
  }

  async function load() {
    const reviewer = reviewerInput.value.trim();
    const mine = ++latest;
    const r = await fetch(`${base}/state?reviewer=${encodeURIComponent(reviewer)}`, {
      credentials: "same-origin",
    });
    if (!r.ok) {
      // A 422 names the file and line that cannot be read (a mined set with a bad byte ...).
      const why = await r.json().then(
        (b) => (typeof b.detail === "string" ? b.detail : null),
        () => null,
      );
      answers.handled += 1;
      if (mine === latest) {
        say(`could not load the review (${r.status})${why ? `: ${why}` : ""}`, true);
      }
      return;
    }
    const body = await r.json();
    answers.handled += 1;
    if (mine !== latest) return;
    render(body);
    if (!reviewer) say("enter your name to start", false);
  }

  async function post(path, fields) {
    const reviewer = reviewerInput.value.trim();
    if (!reviewer) {
      say("enter your name first", true);
      return;
    }
    if (busy) return;
    busy = true;
    const mine = ++latest;
    try {
      const r = await fetch(`${base}/${path}`, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/x-www-form-urlencoded",
          "X-Review-Token": tokenInput.value.trim(),
        },
        body: new URLSearchParams({ reviewer: reviewer, ...fields }).toString(),
      });
      if (r.status === 403) {
        say("refused: the review token is missing or wrong", true);
        return;
      }
      if (!r.ok) {
        say(`refused (${r.status})`, true);
        return;
      }
      const body = await r.json();
      answers.handled += 1;
      if (mine !== latest) return; // a reload after this write shows the newer state
      say("", false);
      render(body);
    } finally {
      busy = false;
    }
  }

  function label(value) {
    if (!state || !state.item) return;
    post("label", { label: value, query_id: state.item.query_id, doc_id: state.item.doc_id });
  }

  for (const b of document.querySelectorAll("button[data-label]")) {
    b.addEventListener("click", () => label(b.dataset.label));
  }
  $("undo").addEventListener("click", () => post("undo", {}));
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey) return;
    const keys = { r: "relevant", n: "not_relevant", u: "unsure" };
    if (keys[e.key]) {
      e.preventDefault();
      label(keys[e.key]);
    } else if (e.key === "Backspace") {
      e.preventDefault();
      post("undo", {});
    }
  });
  window.recallwatchReview = { boot: boot, answers: answers };
  load();
})();
