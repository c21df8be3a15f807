// The landing page: each chapter card shows the reader's quiz score for that chapter, read from
// the localStorage entries that quiz.js writes ("nanobook-quiz:<page>:<quiz id>").

const PREFIX = "nanobook-quiz:";

function scores() {
  const byPage = new Map();
  try {
    for (let i = 0; i < localStorage.length; i += 1) {
      const key = localStorage.key(i);
      if (!key || !key.startsWith(PREFIX)) continue;
      const page = key.slice(PREFIX.length, key.lastIndexOf(":"));
      const value = JSON.parse(localStorage.getItem(key));
      if (!value || !Number.isInteger(value.correct) || !Number.isInteger(value.total)) continue;
      const sum = byPage.get(page) || { correct: 0, answered: 0, total: 0 };
      sum.correct += value.correct;
      sum.answered += value.answered || 0;
      sum.total += value.total;
      byPage.set(page, sum);
    }
  } catch {
    // no storage, or an entry that is not ours: show nothing
  }
  return byPage;
}

function pageOf(link) {
  const path = new URL(link.getAttribute("href"), document.baseURI).pathname;
  const root = new URL(".", document.baseURI).pathname;
  return path.slice(root.length).replace(/\.html$/, "").replace(/\/$/, "");
}

const byPage = scores();
for (const card of document.querySelectorAll("li.chapter-card[id^='chapter-card-']")) {
  const link = card.querySelector("a[href]");
  if (!link) continue;
  const score = byPage.get(pageOf(link));
  if (!score || !score.answered) continue;
  const line = document.createElement("p");
  line.className = "chapter-card-quiz";
  line.textContent = score.answered < score.total
    ? `Quiz: ${score.correct} of ${score.answered} answered correctly so far`
    : `Quiz score: ${score.correct} of ${score.total}`;
  card.append(line);
}
