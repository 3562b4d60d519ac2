// The console works without JavaScript; this only asks once before a destructive action.
document.addEventListener("submit", (event) => {
  // A form with several actions puts the question on its destructive buttons.
  const question = event.submitter?.getAttribute("data-confirm")
    || event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
