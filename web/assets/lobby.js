// lobby.js: the start page. A teacher creates a class (POST /api/classes,
// docs/protocol.md "HTTP API used by the pages") and gets two links.

import { $, toast, copyText, errorMessage } from './ui.js';

const TOKENS_MODE =
  'This Lectern server does not create classes from this page. Classes are created by your ' +
  'school system (or by an administrator with "lectern token"). Ask them for your teacher link.';
const NAME_KEY = 'lectern:teacher-name';

const form = $('#create-form');
const titleInput = $('#class-title');
const nameInput = $('#teacher-name');
const errorBox = $('#lobby-error');
const createButton = $('#create-class');

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = !text;
}

function validate(title, name) {
  if (!title) return { field: titleInput, text: 'Give the class a title.' };
  if (!name) return { field: nameInput, text: 'Enter your name.' };
  if ([...name].length > 64) return { field: nameInput, text: 'Your name can be at most 64 characters.' };
  return null;
}

async function createClass(title, teacherName) {
  const res = await fetch('/api/classes', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ title, teacher_name: teacherName }),
  });
  if (res.status === 403) throw new Error(TOKENS_MODE);
  if (res.status !== 201 && !res.ok) {
    throw new Error(await errorMessage(res, 'Could not create the class'));
  }
  return res.json();
}

function showLinks(title, body) {
  const teacherURL = new URL(body.teacher_url, location.href).href;
  const studentURL = new URL(body.student_url, location.href).href;
  $('#teacher-link').href = teacherURL;
  // The check page tests TURN only with a class token (check.js).
  $('#check-class-link').href = `/check?role=teacher${new URL(teacherURL).hash}`;
  const student = $('#student-link');
  student.href = studentURL;
  student.textContent = studentURL;
  $('#result-title').textContent = title;
  $('#create-step').hidden = true;
  $('#result-step').hidden = false;
  $('#result-heading').focus();
}

async function onSubmit(ev) {
  ev.preventDefault();
  const title = titleInput.value.trim();
  const name = nameInput.value.trim();
  const invalid = validate(title, name);
  if (invalid) {
    showError(invalid.text);
    invalid.field.focus();
    return;
  }
  showError('');
  createButton.disabled = true;
  createButton.setAttribute('aria-busy', 'true');
  try {
    const body = await createClass(title, name);
    rememberName(name);
    showLinks(title, body);
  } catch (err) {
    showError(err instanceof TypeError ? 'Cannot reach the Lectern server. Check the connection and try again.' : err.message);
  } finally {
    createButton.disabled = false;
    createButton.removeAttribute('aria-busy');
  }
}

function rememberName(name) {
  try { localStorage.setItem(NAME_KEY, name); } catch { /* storage may be disabled */ }
}

function restoreName() {
  try { nameInput.value = localStorage.getItem(NAME_KEY) || ''; } catch { /* storage may be disabled */ }
}

async function onCopy() {
  const button = $('#copy-student-link');
  const ok = await copyText($('#student-link').href);
  button.querySelector('.label').textContent = ok ? 'Copied' : 'Copy';
  toast(ok ? 'Invite link copied.' : 'Copy failed: select the link and copy it by hand.', ok ? 'success' : 'error');
  setTimeout(() => { button.querySelector('.label').textContent = 'Copy'; }, 2000);
}

function onAnother() {
  form.reset();
  restoreName();
  $('#result-step').hidden = true;
  $('#create-step').hidden = false;
  titleInput.focus();
}

form.addEventListener('submit', onSubmit);
$('#copy-student-link').addEventListener('click', onCopy);
$('#create-another').addEventListener('click', onAnother);
restoreName();
