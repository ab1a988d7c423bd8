// Label each cell of Flask-Admin's lists with its column's header, for the phone layout.
document.querySelectorAll("table.model-list").forEach((table) => {
  const names = Array.from(table.querySelectorAll("thead th"), (th) => th.textContent.trim());
  table.querySelectorAll("tbody tr").forEach((row) => {
    Array.from(row.children).forEach((cell, i) => {
      if (names[i] && cell.classList.contains("list-buttons-column") === false) {
        cell.dataset.label = names[i];
      }
    });
  });
});
