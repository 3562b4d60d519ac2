// The console works without JavaScript; this only asks before destructive actions and lets the
// queue page refresh itself.
document.addEventListener("submit", (event) => {
  // A form with several actions puts the question on its destructive buttons.
  const question = event.submitter?.getAttribute("data-confirm")
    || event.target.getAttribute("data-confirm");
  if (!question) return;
  if (!window.confirm(question)) {
    event.preventDefault();
    return;
  }
  // Asked and answered: without this field the server asks again on a page of its own (the
  // same question for a browser without JavaScript).
  if (!event.target.querySelector("input[name=confirm]")) {
    const confirmed = document.createElement("input");
    confirmed.type = "hidden";
    confirmed.name = "confirm";
    confirmed.value = "yes";
    event.target.appendChild(confirmed);
  }
});

// The queue page can reload itself; the choice is remembered in this browser. A reload would
// lose checked messages, so it waits while any is checked.
const refresh = document.getElementById("auto-refresh");
if (refresh) {
  refresh.checked = localStorage.getItem("postern.refresh") === "on";
  let timer;
  const arm = () => {
    clearTimeout(timer);
    if (!refresh.checked) return;
    timer = setTimeout(() => {
      if (document.querySelector("#bulk input[type=checkbox]:checked")) arm();
      else window.location.reload();
    }, 1000 * Number(refresh.dataset.seconds || 10));
  };
  refresh.addEventListener("change", () => {
    localStorage.setItem("postern.refresh", refresh.checked ? "on" : "off");
    arm();
  });
  arm();
}

// The queue's "select all": checks or clears every message of the page (without JavaScript,
// its "all" link reloads the page with every box checked).
const checkAll = document.getElementById("check-all");
if (checkAll) {
  checkAll.addEventListener("change", () => {
    for (const box of document.querySelectorAll('#bulk input[type=checkbox][name="id"]')) {
      box.checked = checkAll.checked;
    }
  });
}
