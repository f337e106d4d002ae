// The offers' countdown on the agent's workspace, between two refreshes of the list.
setInterval(() => {
  document.querySelectorAll(".countdown").forEach((element) => {
    const left = Math.max(0, Number(element.dataset.seconds) - 1);
    element.dataset.seconds = String(left);
    element.textContent = String(left);
  });
}, 1000);
