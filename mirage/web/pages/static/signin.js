// A sign-in link carries its token after "#", which browsers never send to a server or put in a Referer:
// move it into the form, wipe it from the address bar and history, and submit (a POST, never a URL).
(function () {
  var token = window.location.hash.slice(1);
  if (!token) return;
  history.replaceState(null, "", window.location.pathname);
  var form = document.getElementById("signin");
  document.getElementById("token").value = decodeURIComponent(token);
  form.submit();
})();
