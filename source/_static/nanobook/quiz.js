// Quizzes: options are real buttons, shuffled on every load; the chosen option's feedback is
// announced in a live region, then every option's feedback is shown; "Try again" resets and
// reshuffles. The score of each quiz is kept in localStorage, for the landing page's cards.

const PREFIX = "nanobook-quiz:";
const LETTERS = "ABCDEFGHIJ";

export function storageKey(doc, quizId) {
  return `${PREFIX}${doc}:${quizId}`;
}

function save(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // storage can be unavailable (private windows, file:// pages): the quiz still works
  }
}

function shuffle(list) {
  const items = [...list.children];
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  list.replaceChildren(...items);
  items.forEach((item, i) => {
    item.querySelector(".nb-option-letter").textContent = LETTERS[i];
  });
}

function setupQuestion(question, onAnswer) {
  const list = question.querySelector(".nb-options");
  const status = question.querySelector(".nb-question-status");
  const multi = question.dataset.multi === "true";
  const check = question.querySelector(".nb-check-answer");
  const options = () => [...list.querySelectorAll("button.nb-option")];

  function letterOf(button) {
    return button.querySelector(".nb-option-letter").textContent;
  }

  function reveal(chosen) {
    const correct = options().filter((b) => b.dataset.correct === "true");
    const right = chosen.length === correct.length && chosen.every((b) => b.dataset.correct === "true");
    question.dataset.answered = "true";
    question.dataset.result = right ? "correct" : "wrong";
    for (const button of options()) {
      button.setAttribute("aria-disabled", "true");
      const isCorrect = button.dataset.correct === "true";
      const picked = chosen.includes(button);
      button.classList.toggle("nb-correct", isCorrect);
      button.classList.toggle("nb-wrong", picked && !isCorrect);
      const marks = [];
      if (isCorrect) marks.push("correct answer");
      if (picked) marks.push("your answer");
      button.querySelector(".nb-option-mark").textContent = marks.join(", ");
      button.parentElement.querySelector(".nb-feedback").hidden = false;
    }
    if (check) check.disabled = true;
    const feedback = chosen.map((b) => {
      const text = b.parentElement.querySelector(".nb-feedback").textContent.trim();
      return multi ? `${letterOf(b)}: ${text}` : text;
    }).join(" ");
    const verdict = right ? "Correct." : multi
      ? `Not quite: the correct answers are ${correct.map(letterOf).join(" and ")}.`
      : `Not quite: the correct answer is ${correct.map(letterOf).join(", ")}.`;
    // The verdict is shown; the feedback (already visible under each option) is only announced.
    const shown = document.createElement("span");
    shown.textContent = verdict;
    const announced = document.createElement("span");
    announced.className = "nb-sr-only";
    announced.textContent = ` ${feedback}`;
    status.replaceChildren(shown, announced);
    onAnswer(right);
  }

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button.nb-option");
    if (!button || question.dataset.answered === "true") return;
    if (multi) {
      button.setAttribute("aria-pressed", String(button.getAttribute("aria-pressed") !== "true"));
      return;
    }
    button.setAttribute("aria-pressed", "true");
    reveal([button]);
  });
  if (check) {
    check.addEventListener("click", () => {
      if (question.dataset.answered === "true") return;
      const chosen = options().filter((b) => b.getAttribute("aria-pressed") === "true");
      if (!chosen.length) {
        status.textContent = "Choose at least one answer first.";
        return;
      }
      reveal(chosen);
    });
  }

  return function reset() {
    delete question.dataset.answered;
    delete question.dataset.result;
    for (const button of options()) {
      button.removeAttribute("aria-disabled");
      button.setAttribute("aria-pressed", "false");
      button.classList.remove("nb-correct", "nb-wrong");
      button.querySelector(".nb-option-mark").textContent = "";
      button.parentElement.querySelector(".nb-feedback").hidden = true;
    }
    if (check) check.disabled = false;
    status.textContent = "";
    shuffle(list);
  };
}

function setupQuiz(quiz) {
  const questions = [...quiz.querySelectorAll(".nb-question")];
  const summary = quiz.querySelector(".nb-quiz-summary");
  const retry = quiz.querySelector(".nb-quiz-retry");
  const key = storageKey(quiz.dataset.doc, quiz.dataset.quiz);
  const total = questions.length;

  function update() {
    const answered = questions.filter((q) => q.dataset.answered === "true").length;
    const correct = questions.filter((q) => q.dataset.result === "correct").length;
    summary.textContent = answered === total
      ? `Score: ${correct} of ${total}.`
      : `${correct} of ${answered} answered correctly so far; ${total - answered} to go.`;
    save(key, { correct, answered, total, date: new Date().toISOString() });
  }

  const resets = questions.map((q) => setupQuestion(q, update));
  retry.addEventListener("click", () => {
    resets.forEach((reset) => reset());
    summary.textContent = "Answers cleared; the options are in a new order.";
    questions[0]?.querySelector("button.nb-option")?.focus();
  });
  resets.forEach((reset) => reset());
  quiz.classList.add("nb-quiz-ready");
}

document.querySelectorAll("section.nb-quiz").forEach(setupQuiz);
