// Marketers' pages: the segment builder's live count and the template editor's preview.
(function () {
  "use strict";
  const csrf = () => (document.querySelector("input[name=csrf]") || {}).value || "";
  const post = (url, body) => fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() }, body: JSON.stringify(body),
  }).then((r) => r.json().then((data) => ({ ok: r.ok, data })));
  const debounce = (fn, ms) => { let t; return () => { clearTimeout(t); t = setTimeout(fn, ms); }; };
  // Answers can come back out of order (a slow one for an older text or customer): only the
  // answer to the latest request is shown, so the page never ends on a stale preview or count.
  const latestOnly = () => { let seq = 0; return (promise) => { const mine = ++seq; return promise.then((a) => (mine === seq ? a : null)); }; };

  const rule = document.getElementById("rule");
  if (rule) {
    const value = document.getElementById("count-value");
    const note = document.getElementById("count-note");
    const latest = latestOnly();
    const count = () => {
      let parsed;
      try { parsed = JSON.parse(rule.value); } catch (e) { latest(Promise.resolve(null)); value.textContent = "–"; note.textContent = "not valid JSON yet"; return; }
      latest(post("/console/segments/count", { rule: parsed })).then((answer) => {
        if (!answer) return;
        const { ok, data } = answer;
        if (ok) { value.textContent = data.count.toLocaleString(); note.textContent = "customers match"; }
        else { value.textContent = "–"; note.textContent = data.error.message; }
      });
    };
    rule.addEventListener("input", debounce(count, 300));
    count();
  }

  const text = document.getElementById("template-text");
  const picker = document.getElementById("preview-customer");
  const segment = document.getElementById("segment");
  if (text && picker && segment) {
    const out = document.getElementById("template-preview");
    const latest = latestOnly();
    const channels = () => Array.from(document.querySelectorAll("input[name=channels]:checked")).map((c) => c.value);
    const show = () => {
      if (!picker.value) return;
      latest(post("/console/campaigns/preview", { text: text.value, customer_id: picker.value, channels: channels(),
        purpose: document.querySelector("select[name=purpose]").value,
        sender_name: document.querySelector("input[name=sender_name]").value })).then((answer) => {
        if (!answer) return;
        const { ok, data } = answer;
        out.replaceChildren();
        const head = document.createElement("p");
        head.className = "muted";
        const body = document.createElement("div");
        body.className = "bubble";
        if (!ok) { head.textContent = data.error.message; out.append(head); return; }
        head.textContent = data.would_send ? `Sends on ${data.channel} at ${new Date(data.send_at).toLocaleString()}`
          : `Would be skipped (${data.skip_reason.replace("_", " ")})` + (data.detail ? `: ${data.detail}` : "");
        body.textContent = data.text || data.error || "";
        out.append(head, body);
      });
    };
    const loadSample = () => fetch(`/console/segments/${segment.value}/sample`, { credentials: "same-origin" })
      .then((r) => r.json()).then((data) => {
        picker.replaceChildren(...data.sample.map((c) => { const o = document.createElement("option"); o.value = c.id;
          o.textContent = `${c.name || c.email || c.id}${c.locale ? " · " + c.locale : ""}`; return o; }));
        show();
      });
    text.addEventListener("input", debounce(show, 300));
    picker.addEventListener("change", show);
    segment.addEventListener("change", loadSample);
    document.querySelectorAll("input[name=channels], select[name=purpose], input[name=sender_name]")
      .forEach((el) => el.addEventListener("change", show));
    if (segment.value) loadSample();
  }
})();
