// Refreshes the SLA board from /api/board every data-refresh seconds. Every value goes in
// through textContent, so customer text is never parsed as HTML.
"use strict";
(function () {
  const board = document.getElementById("board");
  if (!board) return;
  const source = board.dataset.src;
  const seconds = Math.max(1, Math.min(10, Number(board.dataset.refresh) || 5));

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function link(href, text) {
    const a = el("a", text);
    a.href = href;
    return a;
  }

  function when(iso) {
    return iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "";
  }

  function row(t) {
    const tr = document.createElement("tr");
    tr.dataset.number = t.number;
    tr.dataset.colour = t.colour;
    const ticket = el("td");
    ticket.append(link("/tickets/" + t.number, "#" + t.number));
    const customer = el("td", null, "customer");
    if (t.customer_id !== null) {
      customer.append(link("/customers/" + t.customer_id, t.company), " ", el("span", t.plan, "plan"));
    } else {
      customer.append(el("span", "unknown " + (t.requester || ""), "unknown"));
    }
    const left = el("td", t.left, "left " + t.colour);
    if (t.deadline) left.title = t.deadline + " due " + when(t.due);
    tr.append(
      ticket,
      el("td", t.priority, "prio " + t.priority.toLowerCase()),
      el("td", t.status),
      customer,
      el("td", t.assignee || ""),
      el("td", t.escalated_to.join(", ")),
      el("td", t.waiting_on_customer ? "yes" : ""),
      left,
      el("td", t.subject, "subject"),
    );
    return tr;
  }

  function counts(data) {
    const body = document.querySelector("#counts tbody");
    const rows = Object.entries(data.counts).map(([priority, c]) => {
      const tr = el("tr");
      tr.append(el("th", priority));
      for (const key of ["new", "open", "waiting", "total"]) tr.append(el("td", c[key]));
      tr.append(el("td", c.overdue, c.overdue ? "red" : ""));
      return tr;
    });
    body.replaceChildren(...rows);
  }

  function tiles(data) {
    const periods = document.querySelectorAll("#tiles .period");
    Object.values(data.tiles).forEach((list, i) => {
      const nodes = periods[i] ? periods[i].querySelectorAll(".tile") : [];
      list.forEach((t, j) => {
        const node = nodes[j];
        if (!node) return;
        node.className = "tile " + (t.ok === true ? "ok" : t.ok === false ? "miss" : "info");
        node.title = t.basis;
        node.querySelector(".tile-value").textContent = t.value;
      });
    });
  }

  function render(data) {
    counts(data);
    tiles(data);
    const fragment = document.createDocumentFragment();
    for (const t of data.tickets) fragment.append(row(t));
    document.getElementById("board-rows").replaceChildren(fragment);
    document.getElementById("board-summary").textContent =
      data.open + " open, " + data.overdue + " overdue";
    document.getElementById("board-updated").textContent = "as of " + when(data.now);
    document.getElementById("board-status").textContent = "";
  }

  async function refresh() {
    const status = document.getElementById("board-status");
    try {
      const response = await fetch(source, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!response.ok) {
        status.textContent = "refresh failed: HTTP " + response.status;
        return;
      }
      render(await response.json());
    } catch (error) {
      status.textContent = "refresh failed: " + error.message;
    }
  }

  setInterval(refresh, seconds * 1000);
})();
