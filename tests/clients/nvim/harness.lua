-- Test harness for the Neovim client (`nvim --headless -u harness.lua`).
--
-- Puts editor-clients/neovim on 'runtimepath', then, after VimEnter (so that
-- Neovim behaves as it does for a user), runs the Lua test script named by
-- $VQLSP_TEST_SCRIPT. The script returns a list of { name, fn } steps; they run
-- in order and stop at the first failure. Every step's outcome is written as
-- JSON to $VQLSP_TEST_RESULT, then Neovim quits. Waiting is always
-- vim.wait(timeout, condition), never a fixed sleep.
local root = assert(os.getenv('VQLSP_REPO'), 'VQLSP_REPO not set')
vim.opt.runtimepath:prepend(root .. '/editor-clients/neovim')
vim.cmd('runtime! plugin/vqlsp.lua')
vim.opt.swapfile = false
vim.opt.shortmess:append('I')

_G.T = {}
T.timeout = tonumber(os.getenv('VQLSP_TEST_TIMEOUT_MS') or '60000')
T.env = vim.fn.environ()
T.messages = {}

-- vim.notify is captured: tests assert on what the plugin tells the user.
vim.notify = function(msg, level)
  table.insert(T.messages, { msg = msg, level = level or vim.log.levels.INFO })
end

function T.wait(what, condition, timeout)
  local ok = vim.wait(timeout or T.timeout, condition, 10)
  if not ok then
    error('timed out waiting for ' .. what, 2)
  end
end

function T.eq(actual, expected, what)
  if not vim.deep_equal(actual, expected) then
    error(string.format('%s: expected %s, got %s', what or 'value', vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function T.ok(value, what)
  if not value then
    error((what or 'assertion') .. ' failed', 2)
  end
  return value
end

local function write_result(result)
  local path = assert(os.getenv('VQLSP_TEST_RESULT'))
  local f = assert(io.open(path, 'w'))
  f:write(vim.json.encode(result))
  f:close()
end

local function run()
  local result = { steps = {}, messages = T.messages }
  local ok, steps = pcall(dofile, assert(os.getenv('VQLSP_TEST_SCRIPT')))
  if not ok then
    table.insert(result.steps, { name = 'load script', ok = false, err = tostring(steps) })
    steps = {}
  end
  for _, step in ipairs(steps) do
    local start = vim.uv.hrtime()
    local passed, err = xpcall(step[2], debug.traceback)
    table.insert(result.steps, {
      name = step[1],
      ok = passed,
      err = not passed and tostring(err) or nil,
      ms = (vim.uv.hrtime() - start) / 1e6,
    })
    if not passed then
      break
    end
  end
  pcall(function()
    for _, client in ipairs(vim.lsp.get_clients()) do
      client:stop()
    end
    vim.wait(5000, function()
      return #vim.lsp.get_clients() == 0
    end, 10)
  end)
  write_result(result)
  vim.cmd('qall!')
end

vim.api.nvim_create_autocmd('VimEnter', {
  once = true,
  callback = function()
    vim.schedule(function()
      local ok, err = pcall(run)
      if not ok then
        pcall(write_result, { steps = { { name = 'harness', ok = false, err = tostring(err) } }, messages = T.messages })
        vim.cmd('cquit 3')
      end
    end)
  end,
})
